//! srs-tests: end-to-end tests of srs against the real `srs` binary.
//!
//! # Layout
//!
//! - `src/main.rs`: the `srs` binary again (same `main` as `api/cli/src/main.rs`),
//!   so that the integration tests find it as `env!("CARGO_BIN_EXE_srs-e2e")`.
//! - `tests/e2e.rs`: the one integration-test binary, its journeys and matrices.
//! - `tests/common/`: starting and stopping `srs serve`, an HTTP / WebSocket
//!   GraphQL client, fixtures.
#![forbid(unsafe_code)]
