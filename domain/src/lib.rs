//! srs-domain: the model of srs and the event log it is stored in.
//!
//! # Layout
//!
//! - [`log`]: the append-only sled event log (group commit, hash chain,
//!   idempotency, subscriptions) behind the [`log::EventStore`] trait.
//! - [`model`]: every aggregate as pure `decide` / `evolve` code; no I/O.
//! - [`app`]: loads an aggregate from the log, decides, appends with the
//!   expected version.
//! - [`seal`]: the recordings' keys ([`seal::KeyRing`]) and what is sealed
//!   under them (crypto-shredding).
//! - [`time`]: [`time::Timestamp`] and the injected [`time::Clock`].
//! - [`actor`]: [`actor::Actor`], who caused an event.
//!
//! # Features
//!
//! - `testing`: exports `model::testing`, the given / when / then harness
//!   and fixtures, for other crates' tests.
#![forbid(unsafe_code)]

pub mod actor;
pub mod app;
pub mod log;
pub mod model;
pub mod priority;
pub mod seal;
pub mod time;
