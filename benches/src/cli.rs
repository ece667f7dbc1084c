//! The `srs-bench` command line (what `srs bench` runs): the flags of
//! `srs bench`, each benchmark group's options.

use std::process::ExitCode;

use clap::Parser;

/// The flags of `srs bench` (`srs-bench`).
#[derive(Parser, Debug)]
#[command(
    name = "srs bench",
    bin_name = "srs bench",
    version,
    about = "Measure srs; every figure comes with a baseline measured in the same run."
)]
pub struct BenchArgs {
    /// Which benchmarks to run.
    #[arg(value_enum, default_value = "all")]
    pub which: crate::cmd::BenchKind,
    /// One JSON object per figure and line.
    #[arg(long)]
    pub json: bool,
    /// Measuring time per throughput figure, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Events in the log that the scan figure reads.
    #[arg(long, default_value_t = 200_000)]
    pub scan_events: u64,
    /// Events in the generated history that `rebuild` rebuilds.
    #[arg(long, default_value_t = 1_000_000)]
    pub rebuild_events: u64,
    /// Recordings in the catalogue that `rebuild` times filtered pages on.
    #[arg(long, default_value_t = 1_000_000)]
    pub catalogue_recordings: u64,
    /// A reachable PostgreSQL (e.g. `postgresql://user:pw@127.0.0.1/db`):
    /// `log` then also times single-event INSERT+COMMIT from 64 writers
    /// there and compares `append_64_writers` with it.
    #[arg(long, env = "SRS_BENCH_PG", hide_env_values = true)]
    pub pg: Option<String>,
    /// A JetStream cluster (`nats://h1:4222,nats://h2:4222,...`, nats-server
    /// 2.12+): `log` then also times `append_64_writers` on the log kept
    /// in a stream there, against raw publishes of the same size and the
    /// embedded log of the same run, and through two nodes against one.
    /// Its streams (`srs-bench-*`) are deleted at the end.
    #[arg(long, value_name = "URLS")]
    pub log_url: Option<String>,
    /// Recordings in the history that `graphql` serves.
    #[arg(long, default_value_t = 1_000_000)]
    pub graphql_recordings: u64,
    /// Concurrent keep-alive connections of the `graphql` client.
    #[arg(long, default_value_t = 32)]
    pub graphql_connections: usize,
    /// Agents of `graphql` sending session events through the API (each
    /// its own server, token, recording and connection; batches of 50).
    #[arg(long, default_value_t = 64)]
    pub graphql_agents: usize,
    /// Write the history that `graphql` serves into this directory (absent
    /// or empty) and leave it there, with the bench's agents' events, for
    /// `srs serve --data DIR` to be looked at afterwards.
    #[arg(long, value_name = "DIR")]
    pub graphql_keep: Option<std::path::PathBuf>,
    /// The page cache of the servers `graphql` measures, in MiB (`srs serve
    /// --cache-mb`).
    #[arg(long, default_value_t = srs_api::server::DEFAULT_CACHE_MB)]
    pub graphql_cache_mb: u64,
}

/// The `srs-bench` binary: parses the flags, runs, exits 0, or 2 on an
/// error (bad flags, a benchmark that could not measure).
pub fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let graphql = crate::graphql_server::GraphqlBenchOptions {
        recordings: args.graphql_recordings,
        seconds: args.seconds,
        connections: args.graphql_connections,
        agents: args.graphql_agents,
        keep: args.graphql_keep,
        cache_mb: args.graphql_cache_mb,
    };
    let result = runtime.block_on(crate::cmd::bench(
        args.which,
        args.json,
        args.seconds,
        args.scan_events,
        (args.rebuild_events, args.catalogue_recordings),
        crate::cmd::Servers {
            pg: args.pg.as_deref(),
            log_url: args.log_url.as_deref(),
        },
        &graphql,
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
