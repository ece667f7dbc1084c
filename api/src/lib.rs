//! srs-api: the `srs` command line and server.
//!
//! # Layout
//!
//! - [`cli`]: flags (clap, each with an environment variable) and subcommands.
#![forbid(unsafe_code)]

pub mod cli;
