//! The projection crate's one integration-test binary.

mod audit;
mod catalogue;
mod catalogue_index;
mod catalogue_rows;
mod catalogue_search;
mod common;
mod crash;
mod dashboard_retention;
mod engine;
mod fixtures;
mod gen;
mod history;
mod models;
mod props;
mod revocation;
mod sealed;
