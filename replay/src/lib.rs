//! srs-replay: the audit team's and the operator's tools over a data
//! directory, as library functions; the `srs` binary's `replay`, `state`,
//! `rebuild`, `projections`, `export` and `import` subcommands are thin
//! wrappers around them (`srs verify` uses `srs_domain::log::verify`).
//!
//! A tool that opens a data directory opens its sled database itself, so
//! it needs the directory to itself: a directory held by a running `srs serve` gives
//! [`ReplayError::Locked`] and nothing is touched, except for readers
//! that open it through [`DataDir::open_snapshot`] (`export`, `state`),
//! which read a private copy whose chain they check first. Tools that only read
//! never write; tools that write (`import`, `rebuild`) go through the same
//! code the server uses (the log's encoder and key layout, the projection
//! engine's rebuild-and-swap).
//!
//! The tools take the log as an [`EventLog`](srs_domain::log::EventLog)
//! over any backend, so the `srs` binary runs the same ones over a log
//! kept in a JetStream stream (`--log-url`); only opening a data
//! directory ([`DataDir`]) is sled's.
//!
//! Memory stays flat: the log is read in batches of [`READ_BATCH`] events
//! and every line is written out before the next batch is read.
//!
//! # Layout
//!
//! - `error`: [`ReplayError`].
//! - `data`: [`DataDir`], opening a data directory for a tool.
//! - `history`: [`Filter`], [`EventLine`] (one event as JSON, every
//!   envelope field), [`replay`] streaming a filtered history.
//! - `state`: [`AsOf`], [`aggregate_state`] (an aggregate folded with the
//!   domain's own `evolve` up to a point) and [`projection_state`] (a read
//!   model as it was then).
//! - `export`: [`export`] and [`import`], the portable log file (its format
//!   is documented there).
//! - `offline_projections`: [`rebuild`] and [`statuses`], projection operations offline.
//! - [`table`]: aligned text columns for the tools' table output.
#![forbid(unsafe_code)]

mod data;
mod error;
mod export;
mod history;
mod offline_projections;
mod state;
pub mod table;

pub use data::DataDir;
pub use error::ReplayError;
pub use export::{
    check_export, export, export_up_to, import, import_with, record_export, ExportSummary,
    ImportSummary, FORMAT_NAME, FORMAT_VERSION,
};
pub use history::{
    deleted_recordings, replay, replay_shown, EventLine, EventWriter, Filter, Format, ShownEvent,
    TABLE_COLUMNS,
};
pub use offline_projections::{rebuild, statuses, OfflineStatus, RebuildTick};
pub use state::{aggregate_state, projection_state, AsOf, PROJECTION_STATES};

/// How many events a tool reads from the log at a time.
pub const READ_BATCH: usize = 512;
