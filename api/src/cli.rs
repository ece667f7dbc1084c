//! The `srs` command line.
//!
//! Exit codes: 0 success, 1 a check failed (e.g. a broken chain), 2 an error
//! (bad flags, a data directory in use, storage failure).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::bench_cmd::bench;
pub use crate::bench_cmd::BenchKind;
use crate::server::{shutdown_signal, ServeError, ServeOptions, Server};
use crate::state::Limits;

#[derive(Parser, Debug)]
#[command(name = "srs", version, about = "Session Recording service")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (to stderr).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the data directory and serve the GraphQL API until SIGINT/SIGTERM.
    Serve {
        /// Data directory (sled database).
        #[arg(long, env = "SRS_DATA", default_value = "./data")]
        data: PathBuf,
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, env = "SRS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Log line format; the level comes from RUST_LOG (default `info`).
        #[arg(long, env = "SRS_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Walk the log's hash chain and invariants (gapless positions and stream
    /// versions, decodable events, indexes, head). Exit 0 intact, 1 broken
    /// (the first broken position is printed), 2 error (e.g. the directory
    /// is held by a running `srs serve`).
    Verify {
        /// Data directory (sled database).
        #[arg(long, env = "SRS_DATA", default_value = "./data")]
        data: PathBuf,
        /// First position to check (the one before it is trusted).
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Measure srs; every figure comes with a baseline measured in the same run.
    Bench {
        /// Which benchmarks to run.
        #[arg(value_enum, default_value = "all")]
        which: BenchKind,
        /// One JSON object per figure and line.
        #[arg(long)]
        json: bool,
        /// Measuring time per throughput figure, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Events in the log that the scan figure reads.
        #[arg(long, default_value_t = 200_000)]
        scan_events: u64,
        /// Events in the generated history that `rebuild` rebuilds.
        #[arg(long, default_value_t = 1_000_000)]
        rebuild_events: u64,
        /// Recordings in the history that `graphql` serves.
        #[arg(long, default_value_t = 1_000_000)]
        graphql_recordings: u64,
        /// Concurrent keep-alive connections of the `graphql` client.
        #[arg(long, default_value_t = 32)]
        graphql_connections: usize,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            data,
            listen,
            log_format,
        } => {
            init_tracing(log_format);
            serve(ServeOptions {
                data,
                listen,
                limits: Limits::default(),
            })
            .await
        }
        Command::Schema => {
            print!("{}", crate::graphql::sdl());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { data, from } => verify(&data, from),
        Command::Bench {
            which,
            json,
            seconds,
            scan_events,
            rebuild_events,
            graphql_recordings,
            graphql_connections,
        } => {
            let graphql = crate::bench_graphql::GraphqlBenchOptions {
                recordings: graphql_recordings,
                seconds,
                connections: graphql_connections,
            };
            bench(which, json, seconds, scan_events, rebuild_events, &graphql).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify(data: &std::path::Path, from: u64) -> anyhow::Result<ExitCode> {
    use srs_domain::log::{open_db, verify, LogError, LOG_TREE};
    use srs_domain::model::DomainEvent;

    if !data.join("db").exists() && !data.join("conf").exists() {
        eprintln!("error: {} holds no srs data", data.display());
        return Ok(ExitCode::from(2));
    }
    let db = match open_db(data, 64 * 1024 * 1024) {
        Ok(db) => db,
        Err(e @ LogError::Locked { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let tree = db.open_tree(LOG_TREE)?;
    let report = verify::<DomainEvent>(&tree, from, |position| {
        eprintln!("srs: verified up to position {position}");
    })?;
    match report.breach {
        None => {
            println!(
                "intact: {} events checked, head position {} hash {}",
                report.checked, report.last.position, report.last.hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(breach) => {
            println!(
                "broken at position {} ({:?}): {} ({} events before it verified)",
                breach.position, breach.kind, breach.reason, report.checked
            );
            Ok(ExitCode::from(1))
        }
    }
}

async fn serve(options: ServeOptions) -> anyhow::Result<ExitCode> {
    let server = match Server::open(options).await {
        Ok(server) => server,
        Err(e @ ServeError::Locked(_)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(secret) = server.bootstrap_secret() {
        println!(
            "srs: created the first ADMIN token (shown once; also in {}):",
            server.admin_token_path().display()
        );
        println!("srs: admin token: {secret}");
    }
    let addr = server.local_addr()?;
    println!("srs: listening on http://{addr}");
    // Tests and scripts read the line above from a pipe: make it visible now.
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, "serving");
    server.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("warning: logging is not set up: {e}");
    }
}
