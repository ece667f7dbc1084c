//! The read side's application layer: what the GraphQL resolvers ask of
//! the read models, and who may ask it. Reads never append to the log
//! and never load a write-side aggregate; the one thing they may write is
//! a refusal (`AccessDenied`), through [`access::deny`] or the domain's
//! `Service::authorize`, exactly as a command's refusal is written.
//!
//! # Layout
//!
//! - [`access`]: every read authorization decision: the role table
//!   (`model::may`, the domain's, asked only from here on the read path),
//!   site scopes, grant-only auditor visibility, restrictions, hold
//!   visibility, and the recording of refusals.
//! - [`playback`]: a recording's timeline and stored content as its log
//!   stream holds them, for `Recording.playback` (a read: nothing is
//!   recorded) and `playRecording` (the audited playback).

pub mod access;
pub mod playback;
