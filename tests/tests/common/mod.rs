//! Helpers of the end-to-end tests: a real `srs serve` process, and a
//! GraphQL client speaking HTTP and WebSocket as users' tools do.

#![allow(dead_code)] // Not every test binary uses every helper.

pub mod client;
pub mod fixtures;
pub mod log;
pub mod server;

pub use client::Client;
pub use server::Srs;
