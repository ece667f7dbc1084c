//! End-to-end tests of srs: the real `srs serve`, spoken to over HTTP and
//! WebSocket like dashboards, agents and scripts do.
//!
//! Server starts are expensive on a small machine, so each test starts one
//! server and runs a whole journey on it.

mod common;

#[path = "e2e/abuse.rs"]
mod abuse;
#[path = "e2e/agents.rs"]
mod agents;
#[path = "e2e/authz.rs"]
mod authz;
#[path = "e2e/backup.rs"]
mod backup;
#[path = "e2e/bad_input.rs"]
mod bad_input;
#[path = "e2e/browser.rs"]
mod browser;
#[path = "e2e/catalogue_rows.rs"]
mod catalogue_rows;
#[path = "e2e/cli.rs"]
mod cli;
#[path = "e2e/cluster.rs"]
mod cluster;
#[path = "e2e/console.rs"]
mod console;
#[path = "e2e/content.rs"]
mod content;
#[path = "e2e/demo.rs"]
mod demo;
#[path = "e2e/detections.rs"]
mod detections;
#[path = "e2e/existence.rs"]
mod existence;
#[path = "e2e/full_disk.rs"]
mod full_disk;
#[path = "e2e/history.rs"]
mod history;
#[path = "e2e/jetstream.rs"]
mod jetstream;
#[path = "e2e/journeys.rs"]
mod journeys;
#[path = "e2e/legal_hold.rs"]
mod legal_hold;
#[path = "e2e/live.rs"]
mod live;
#[path = "e2e/permissions.rs"]
mod permissions;
#[path = "e2e/priority.rs"]
mod priority;
#[path = "e2e/readme.rs"]
mod readme;
#[path = "e2e/refusals.rs"]
mod refusals;
#[path = "e2e/replay.rs"]
mod replay;
#[path = "e2e/shredding.rs"]
mod shredding;
#[path = "e2e/simulate.rs"]
mod simulate;
#[path = "e2e/storage.rs"]
mod storage;
#[path = "e2e/tokens.rs"]
mod tokens;
#[path = "e2e/typed.rs"]
mod typed;
#[path = "e2e/verify.rs"]
mod verify;
