//! srs-domain: the model of srs and the event log it is stored in.
//!
//! # Layout
//!
//! - [`log`]: the append-only sled event log (group commit, hash chain,
//!   idempotency, subscriptions) behind the [`log::EventStore`] trait.
//! - [`model`]: every aggregate as pure `decide` / `evolve` code; no I/O.
//! - [`app`]: loads an aggregate from the log, decides, appends with the
//!   expected version.
//! - [`time`]: [`time::Timestamp`] and the injected [`time::Clock`].
//! - [`actor`]: [`actor::Actor`], who caused an event.
#![forbid(unsafe_code)]

pub mod actor;
pub mod log;
pub mod time;
pub mod app;
pub mod model;
