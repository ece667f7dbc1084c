//! srs-api: the server library. Its one job is serving the GraphQL API of
//! `API.md` and the HTTP routes around it (content, backup, console,
//! GraphiQL, health, metrics) on a data directory, on a listener the
//! caller has bound ([`server::Server::bind`], then
//! [`server::Server::open_bound`] and [`server::Server::run`]). The command
//! line is the `srs` package (`api/cli/`), the GraphQL client `srs-client`
//! (`api/client/`), the simulator and the demo seeder `srs-sim`
//! (`api/sim/`).
//!
//! # Layout
//!
//! - [`backup`]: the backup file format, writing and checking it, restoring
//!   it into a data directory; `POST /backup` and `GET /log/export` on a
//!   running server.
//! - [`content`]: recording content (encrypted chunks, playback, crypto-shredding).
//! - [`retention`]: the retention scheduler.
//! - [`server`]: `srs serve`: open the data directory, start the read
//!   models, bootstrap the first admin, serve, shut down gracefully.
//! - [`http`]: [`http::app`], the axum router: `/graphql`, `/graphql/ws`,
//!   `/healthz`, `/readyz`, `/metrics`, request ids, body limit, CORS.
//! - [`console`]: the web console at `GET /` (its pages) and
//!   `/assets/{file}`, the built bundle of `console/` embedded in the binary.
//! - [`graphiql`]: GraphiQL at `GET /graphql`, its assets embedded in the
//!   binary (vendored in `api/assets/graphiql/`).
//! - [`graphql`]: [`graphql::schema`], the schema built without any transport.
//! - [`read`]: the read side's application layer: what the queries ask of
//!   the read models, and every read authorization decision
//!   ([`read::access`]). Reads never append.
//! - [`state`]: [`state::Services`] (what resolvers use) and [`state::Limits`].
//! - [`auth`]: bearer tokens and secrets.
//! - [`last_used`]: when each token was last used and each server last
//!   heartbeated, per minute, outside the log.
//! - [`throttle`]: rate limits per principal and per client address.
//! - [`sockets`]: the subscription WebSockets: connection-init timeout,
//!   closing when the credential goes, per-principal bounds.
//! - [`error`]: [`error::ApiError`] and the stable `extensions.code`s.
//! - [`metrics`]: the Prometheus text exposition.
#![forbid(unsafe_code)]

pub mod auth;
pub mod background;
pub mod backup;
pub mod cluster;
pub mod console;
pub mod content;
pub mod error;
pub mod graphiql;
pub mod graphql;
pub mod http;
pub mod last_used;
pub mod metrics;
pub mod read;
pub mod retention;
pub mod server;
pub mod sockets;
pub mod state;
pub mod throttle;
