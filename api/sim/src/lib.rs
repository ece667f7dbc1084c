//! srs-sim: plausible activity for srs. Its one job is generating it: `srs
//! simulate` drives a running server through the public API as a fleet of
//! Session Recording servers, and `srs serve --demo` seeds an empty data
//! directory with a demo organisation and keeps a small fleet at work.
//!
//! # Layout
//!
//! - [`simulate`]: `srs simulate` and its [`simulate::Report`]; the site
//!   and policy set-up shared with the demo; [`simulate::generator`], the
//!   plausible users, hosts, applications and events, deterministic from a
//!   seed.
//! - [`demo`]: `srs serve --demo`: seeding through the schema in-process
//!   and the application layer, resuming a seeded directory, the demo fleet.
//!
//! Both drive the API through [`srs_client::Gql`]: the simulator over HTTP
//! ([`srs_client::Client`]), the demo in-process (the server library's
//! schema), so the set-up code is written once.
#![forbid(unsafe_code)]

pub mod demo;
pub mod simulate;
