//! srs-cli: the `srs` command line. Its one job is turning flags (clap,
//! each with an environment variable) into calls: `srs serve` opens and
//! runs the server library ([`srs_api`]), `simulate` and `serve --demo`
//! call the simulator ([`srs_sim`]), `replay`, `state`, `rebuild`, `projections`,
//! `export`, `import`, `verify`, `backup` and `restore` are glue over
//! `srs_replay` and [`srs_api::backup`] (through a running server with
//! [`srs_client`]), and `srs bench` runs the `srs-bench` executable found
//! next to this one.
//!
//! # Layout
//!
//! - this module: the flags, [`main`], `serve`, `simulate`, `verify`,
//!   `bench`.
//! - `replay_cmd`: `srs replay`, `state`, `rebuild`, `projections`,
//!   `export`, `import` over `srs_replay` (`replay`, `state`, `export`
//!   and `import` also over a JetStream stream, with [`LogArgs`]).
//! - `backup_cmd`: `srs backup` / `srs restore`.
//!
//! Exit codes: 0 success, 1 a check failed (e.g. a broken chain), 2 an error
//! (bad flags, a data directory in use, storage failure).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use srs_api::server::{shutdown_signal, ServeError, ServeOptions, Server};
use srs_api::state::{Limits, Rate};
use srs_log_jetstream::{JetStreamBackend, JetStreamOptions};

mod backup_cmd;
mod replay_cmd;

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
        /// Seed an EMPTY data directory with a demo organisation (sites,
        /// servers, policies, recordings over the last 30 days), then serve
        /// with the demo's servers at work. A demo's own directory is
        /// resumed; a directory holding anything else is refused (exit 2).
        #[arg(long, env = "SRS_DEMO", conflicts_with = "log_url")]
        demo: bool,
        /// Recordings the demo seeds.
        #[arg(
            long,
            env = "SRS_DEMO_RECORDINGS",
            default_value_t = 3000,
            requires = "demo"
        )]
        demo_recordings: u64,
        /// The demo data's seed (same seed, same users, hosts and events).
        #[arg(long, env = "SRS_DEMO_SEED", default_value_t = 1, requires = "demo")]
        demo_seed: u64,
        /// A browser origin (`scheme://host[:port]`, e.g.
        /// `https://dashboard.example`) whose pages may call `/graphql` and
        /// the content routes (CORS). Repeat the flag, or separate origins
        /// with commas in SRS_CORS_ORIGIN. Default: none (no CORS headers).
        #[arg(
            long = "cors-origin",
            env = "SRS_CORS_ORIGIN",
            value_name = "ORIGIN",
            value_delimiter = ',',
            value_parser = origin
        )]
        cors_origins: Vec<String>,
        #[command(flatten)]
        limits: LimitArgs,
        /// The most refusal (AccessDenied) facts written per principal and
        /// minute; further refusals are counted in /metrics only.
        #[arg(long, env = "SRS_DENIAL_FACTS_PER_MINUTE", default_value_t = srs_domain::app::DENIAL_FACTS_PER_MINUTE)]
        denial_facts_per_minute: u32,
        /// Seconds without a heartbeat after which a connected server is
        /// marked OFFLINE (checked every third of it, at most every 30 s).
        #[arg(long, env = "SRS_LIVENESS_SECS", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        liveness_secs: u64,
        #[command(flatten)]
        log: LogArgs,
        /// The embedded database's page cache, in MiB (sled counts pages at
        /// their size on disk; resident they take about 3 times that).
        #[arg(long, env = "SRS_CACHE_MB", default_value_t = srs_api::server::DEFAULT_CACHE_MB, value_parser = clap::value_parser!(u64).range(8..=65_536))]
        cache_mb: u64,
        /// With --log-url: seconds a scheduled job's lease (retention, the
        /// liveness check: one node of the cluster runs each) outlives its
        /// holder, when the leases' bucket is created.
        #[arg(long, env = "SRS_LEASE_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=3_600))]
        lease_secs: u64,
        /// With --log-url: the cluster key file, 32 random bytes, the same
        /// file on every `srs serve` of the cluster (mode 0600). It wraps
        /// the recordings' keys kept in the cluster and is never stored
        /// there. srs does not create it: make it once with
        /// `(umask 077; head -c 32 /dev/urandom > PATH)` and copy it to
        /// every node.
        #[arg(
            long,
            env = "SRS_CLUSTER_KEY_FILE",
            value_name = "PATH",
            requires = "log_url"
        )]
        cluster_key_file: Option<PathBuf>,
        /// Start the service's clock at this RFC 3339 instant; it then runs
        /// at wall-clock speed. For drills and tests of time-dependent
        /// behaviour (the demo at a given time of day); never in production.
        #[arg(long, env = "SRS_CLOCK_START", hide = true, value_parser = clock_start)]
        clock_start: Option<srs_domain::time::Timestamp>,
    },
    /// Act as N connected Session Recording servers recording M sessions
    /// through the public API, and report what was sent, the throughput and
    /// the errors. Exit 0 when no request failed, 1 when some did, 2 when
    /// the set-up failed (bad URL or token, bad flags).
    Simulate(SimulateArgs),
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
        #[command(flatten)]
        log: LogArgs,
        /// First position to check (the one before it is trusted).
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Print the history, one event a line (JSON lines or a table), filtered
    /// by position, time, stream, type and actor; --follow keeps tailing
    /// (through a running server, with --url and --token).
    Replay(crate::replay_cmd::ReplayArgs),
    /// Print an aggregate (by stream) or a read model (--projection
    /// access-restrictions) as it was at a log position or time, as JSON.
    State(crate::replay_cmd::StateArgs),
    /// Rebuild projections from the log into fresh trees and swap them in,
    /// with progress; through a running server with --url and --token.
    Rebuild(crate::replay_cmd::RebuildArgs),
    /// Status of each projection: position, lag, version.
    Projections(crate::replay_cmd::ProjectionsArgs),
    /// Write the whole log to a portable, versioned, checksummed file.
    Export(crate::replay_cmd::ExportArgs),
    /// Verify an export file completely, then write it into a new data directory.
    Import(crate::replay_cmd::ImportArgs),
    /// Write the log, the content chunks and the recordings' keys (encrypted
    /// under a passphrase or key file) as of one log position into one file;
    /// through a running server with --url and --token (ADMIN).
    Backup(crate::backup_cmd::BackupArgs),
    /// Verify a backup file completely, then write it into a new (or empty)
    /// data directory; nothing is written unless every check passes.
    Restore(crate::backup_cmd::RestoreArgs),
    /// Measure srs; every figure comes with a baseline measured in the same run.
    ///
    /// Runs the `srs-bench` executable found next to `srs` with these
    /// arguments (`srs bench --help` lists them); build both with
    /// `cargo build --release -p srs -p srs-bench`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Bench {
        /// The arguments of `srs-bench`, e.g. `log --json`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
}

/// `srs serve` limits against abuse (see `state::Limits`; the defaults
/// are that type's). Durations are in seconds (fractions allowed).
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// GraphQL requests per second of one principal (burst: twice as many; 0: no limit).
    #[arg(long, env = "SRS_RATE_LIMIT_PRINCIPAL", default_value_t = 500.0)]
    pub rate_limit_principal: f64,
    /// GraphQL requests without a valid token, and WebSocket upgrades, per
    /// second of one client address (burst: 100 or twice as many; 0: no limit).
    #[arg(long, env = "SRS_RATE_LIMIT_ANONYMOUS", default_value_t = 30.0)]
    pub rate_limit_anonymous: f64,
    /// The longest GraphQL query text, in bytes (variables do not count).
    #[arg(long, env = "SRS_MAX_QUERY_BYTES", default_value_t = 64 * 1024)]
    pub max_query_bytes: usize,
    /// The most selections of a document once its fragments are expanded.
    #[arg(long, env = "SRS_MAX_SELECTIONS", default_value_t = 5_000)]
    pub max_selections: u64,
    /// The time budget of an authenticated GraphQL request.
    #[arg(long, env = "SRS_REQUEST_TIMEOUT", default_value = "30", value_parser = seconds)]
    pub request_timeout: std::time::Duration,
    /// The time budget of a GraphQL request without a token.
    #[arg(long, env = "SRS_ANONYMOUS_REQUEST_TIMEOUT", default_value = "5", value_parser = seconds)]
    pub anonymous_request_timeout: std::time::Duration,
    /// The time budget of `verify` and `rebuildProjections` (they walk the whole log).
    #[arg(long, env = "SRS_LONG_REQUEST_TIMEOUT", default_value = "1800", value_parser = seconds)]
    pub long_request_timeout: std::time::Duration,
    /// How long a WebSocket may stay open without `connection_init`.
    #[arg(long, env = "SRS_WS_INIT_TIMEOUT", default_value = "10", value_parser = seconds)]
    pub ws_init_timeout: std::time::Duration,
    /// Open WebSockets per principal.
    #[arg(long, env = "SRS_WS_CONNECTIONS_PER_PRINCIPAL", default_value_t = 32)]
    pub ws_connections_per_principal: usize,
    /// Subscriptions per principal, over all its WebSockets.
    #[arg(
        long,
        env = "SRS_WS_SUBSCRIPTIONS_PER_PRINCIPAL",
        default_value_t = 128
    )]
    pub ws_subscriptions_per_principal: usize,
}

impl LimitArgs {
    /// The limits these flags give.
    pub fn limits(&self) -> Limits {
        let rate = |per_second: f64, least_burst: f64| {
            (per_second > 0.0).then(|| Rate::new(per_second, (2.0 * per_second).max(least_burst)))
        };
        Limits {
            rate_principal: rate(self.rate_limit_principal, 1.0),
            rate_anonymous_ip: rate(self.rate_limit_anonymous, 100.0),
            max_query_bytes: self.max_query_bytes,
            max_selections: self.max_selections,
            request_timeout: self.request_timeout,
            anonymous_request_timeout: self.anonymous_request_timeout,
            long_request_timeout: self.long_request_timeout,
            ws_init_timeout: self.ws_init_timeout,
            ws_connections_per_principal: self.ws_connections_per_principal,
            ws_subscriptions_per_principal: self.ws_subscriptions_per_principal,
            ..Limits::default()
        }
    }
}

/// An RFC 3339 instant, e.g. `2026-03-18T15:30:00Z`.
fn clock_start(text: &str) -> Result<srs_domain::time::Timestamp, String> {
    srs_domain::time::Timestamp::parse_rfc3339(text.trim())
        .map_err(|e| format!("`{text}` is not an RFC 3339 instant: {e}"))
}

/// The wall clock shifted by a fixed offset (`--clock-start`): it starts at
/// the given instant and runs at wall-clock speed from there.
#[derive(Debug)]
struct ShiftedClock {
    offset_micros: i64,
}

impl ShiftedClock {
    fn starting_at(start: srs_domain::time::Timestamp) -> Self {
        ShiftedClock {
            offset_micros: start.as_micros() - srs_domain::time::Timestamp::now().as_micros(),
        }
    }
}

impl srs_domain::time::Clock for ShiftedClock {
    fn now(&self) -> srs_domain::time::Timestamp {
        srs_domain::time::Timestamp::now().plus_micros(self.offset_micros)
    }
}

/// A browser origin as browsers send it in `Origin`: `http` or `https`,
/// a host, an optional port; no path, query, user or wildcard. Scheme and
/// host are lowercased (browsers send them so), a trailing `/` is dropped.
fn origin(text: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!("`{text}` is not an origin ({why}); e.g. https://dashboard.example:8443")
    };
    let trimmed = text.trim();
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let lower = trimmed.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| bad("it must start with http:// or https://"))?;
    if rest.is_empty() {
        return Err(bad("no host"));
    }
    if let Some(c) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
    {
        return Err(bad(&format!("`{c}` has no place in an origin")));
    }
    Ok(lower)
}

/// A duration in seconds, e.g. `10` or `0.5`.
fn seconds(text: &str) -> Result<std::time::Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    std::time::Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}` is not a positive number of seconds"))
}

/// `srs simulate` flags.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// The srs base URL.
    #[arg(long, env = "SRS_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An ADMIN token (it creates the site and connects the servers).
    #[arg(long, env = "SRS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Servers to connect.
    #[arg(long, env = "SRS_SIM_SERVERS", default_value_t = 4)]
    pub servers: usize,
    /// Sessions in all, spread round-robin over the servers.
    #[arg(long, env = "SRS_SIM_SESSIONS", default_value_t = 100)]
    pub sessions: u64,
    /// At most this many session events per second over the fleet (default: as fast as answered).
    #[arg(long, env = "SRS_SIM_RATE")]
    pub rate: Option<f64>,
    /// Same seed, same users, hosts, applications and event sequence.
    #[arg(long, env = "SRS_SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Content bytes uploaded per screen recording (0: none).
    #[arg(long, env = "SRS_SIM_CONTENT_BYTES", default_value_t = 0)]
    pub content_bytes: u64,
    /// At most this many session events per session.
    #[arg(long, default_value_t = 200)]
    pub max_events: usize,
    /// Session events per recordSessionEvents call (1..=1000).
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Sessions in flight per server.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The site to create or reuse (by name).
    #[arg(long, default_value = srs_sim::simulate::DEFAULT_SITE)]
    pub site: String,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
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
        // The reader went away (`srs replay ... | head`): what it wanted
        // it has; that is no error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// One line to stdout. Unlike `println!`, which panics when stdout is a
/// pipe whose reader has gone (`| head`), it returns the error, which
/// [`main`] turns into a quiet exit 0.
fn out(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(line)?;
    stdout.write_all(b"\n")
}

/// Whether `e` is a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let io = cause.downcast_ref::<std::io::Error>().or_else(|| {
            match cause.downcast_ref::<srs_replay::ReplayError>() {
                Some(srs_replay::ReplayError::Io(io)) => Some(io),
                _ => None,
            }
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Where the log is kept when it is not in the data directory.
#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// The log in a NATS JetStream cluster (nats-server 2.12+) instead of
    /// the data directory: the servers' URLs, comma-separated
    /// (`nats://10.0.0.1:4222,nats://10.0.0.2:4222`). For `serve`, the
    /// recordings' content and keys go to the cluster too (with
    /// --cluster-key-file); the read models and tokens stay in the data
    /// directory.
    #[arg(long, env = "SRS_LOG_URL", value_name = "URLS")]
    pub log_url: Option<String>,
    /// The JetStream stream that holds the log (with --log-url).
    #[arg(
        long,
        env = "SRS_LOG_STREAM",
        value_name = "NAME",
        default_value = "srs"
    )]
    pub log_stream: String,
    /// The most messages the JetStream servers take in one atomic batch
    /// (their `jetstream { limits { batch { max_msgs } } }`), so the most
    /// events of one append. 4000 lets a full batch of 1,000 session
    /// events with its detections be one append; the servers' default is
    /// 1000.
    #[arg(
        long,
        env = "SRS_LOG_MAX_BATCH",
        value_name = "N",
        default_value_t = srs_log_jetstream::MAX_BATCH,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000)
    )]
    pub log_max_batch: usize,
}

impl LogArgs {
    /// The JetStream options, when `--log-url` is given.
    fn jetstream(&self) -> Option<JetStreamOptions> {
        self.log_url.as_deref().map(|urls| JetStreamOptions {
            max_batch: self.log_max_batch,
            ..JetStreamOptions::new(urls, &self.log_stream)
        })
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            data,
            listen,
            log_format,
            demo,
            demo_recordings,
            demo_seed,
            cors_origins,
            limits,
            denial_facts_per_minute,
            liveness_secs,
            log,
            cache_mb,
            lease_secs,
            cluster_key_file,
            clock_start,
        } => {
            init_tracing(log_format);
            let demo = demo.then_some(srs_sim::demo::DemoOptions {
                recordings: demo_recordings,
                seed: demo_seed,
                ..Default::default()
            });
            serve(
                ServeOptions {
                    data,
                    listen,
                    limits: Limits {
                        denial_facts_per_minute,
                        liveness_period: std::time::Duration::from_secs(liveness_secs),
                        lease_ttl: std::time::Duration::from_secs(lease_secs),
                        ..limits.limits()
                    },
                    cors_origins,
                    cluster_key_file,
                    cache_mb,
                },
                demo,
                log.jetstream(),
                clock_start.map(|start| {
                    Arc::new(ShiftedClock::starting_at(start)) as Arc<dyn srs_domain::time::Clock>
                }),
            )
            .await
        }
        Command::Simulate(args) => {
            init_tracing(LogFormat::Text);
            simulate(args).await
        }
        Command::Schema => {
            std::io::stdout()
                .lock()
                .write_all(srs_api::graphql::sdl().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { data, from, log } => match log.jetstream() {
            None => verify(&data, from),
            Some(options) => verify_jetstream(&options, from),
        },
        Command::Replay(args) => crate::replay_cmd::replay(args).await,
        Command::State(args) => crate::replay_cmd::state(args).await,
        Command::Rebuild(args) => crate::replay_cmd::rebuild(args).await,
        Command::Projections(args) => crate::replay_cmd::projections(args).await,
        Command::Export(args) => crate::replay_cmd::export(args).await,
        Command::Import(args) => crate::replay_cmd::import(args).await,
        Command::Backup(args) => crate::backup_cmd::backup_command(args).await,
        Command::Restore(args) => crate::backup_cmd::restore_command(args).await,
        Command::Bench { args } => bench(&args),
    }
}

/// The benchmarks' executable, looked for next to this one.
const BENCH_EXE: &str = "srs-bench";

/// `srs bench ARGS`: runs `srs-bench ARGS` from the directory of this
/// executable, its output straight through, and exits with its exit code.
fn bench(args: &[std::ffi::OsString]) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(std::path::Path::new("."));
    bench_in(dir, args)
}

fn bench_in(dir: &std::path::Path, args: &[std::ffi::OsString]) -> anyhow::Result<ExitCode> {
    let path = dir.join(format!("{BENCH_EXE}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        eprintln!(
            "error: `srs bench` runs {}, which is not there; build it next to srs with \
             `cargo build --release -p srs-bench` (or both with `cargo build --release -p srs -p srs-bench`)",
            path.display()
        );
        return Ok(ExitCode::from(2));
    }
    let status = std::process::Command::new(&path)
        .args(args)
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", path.display()))?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        None => {
            // Killed by a signal: the shell's convention, 128 + the signal.
            #[cfg(unix)]
            let code = std::os::unix::process::ExitStatusExt::signal(&status)
                .map_or(2, |signal| 128 + signal);
            #[cfg(not(unix))]
            let code = 2;
            ExitCode::from(u8::try_from(code).unwrap_or(2))
        }
    })
}

fn verify(data: &std::path::Path, from: u64) -> anyhow::Result<ExitCode> {
    use srs_domain::log::LOG_TREE;
    use srs_replay::ReplayError;

    // A read-only directory is verified through a private copy.
    let opened = match crate::replay_cmd::open_to_read(data) {
        Ok(opened) => opened,
        Err(e @ (ReplayError::NoData(_) | ReplayError::Locked(_))) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    let tree = opened.db.open_tree(LOG_TREE)?;
    report_verified(&tree, from)
}

/// `srs verify --log-url`: the log kept in a JetStream stream (which must
/// exist: verifying never creates one).
fn verify_jetstream(options: &JetStreamOptions, from: u64) -> anyhow::Result<ExitCode> {
    match srs_log_jetstream::stream_exists(options) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!(
                "error: there is no stream {} on {}",
                options.stream,
                options.urls.join(",")
            );
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    }
    let backend = match JetStreamBackend::open(options) {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    report_verified(&backend, from)
}

/// Walks the log in `backend` from `from` and prints the outcome: exit 0
/// intact, 1 broken.
fn report_verified(
    backend: &dyn srs_domain::log::LogBackend,
    from: u64,
) -> anyhow::Result<ExitCode> {
    use srs_domain::log::verify;
    use srs_domain::model::DomainEvent;

    let report = verify::<DomainEvent>(backend, from, |position| {
        eprintln!("srs: verified up to position {position}");
    })?;
    match report.breach {
        None => {
            out(format_args!(
                "intact: {} events checked, head position {} hash {}",
                report.checked, report.last.position, report.last.hash
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(breach) => {
            out(format_args!(
                "broken at position {} ({:?}): {} ({} events before it verified)",
                breach.position, breach.kind, breach.reason, report.checked
            ))?;
            Ok(ExitCode::from(1))
        }
    }
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    use srs_sim::simulate::{run, SimulateError, SimulateOptions};
    let options = SimulateOptions {
        url: args.url,
        token: args.token,
        servers: args.servers,
        sessions: args.sessions,
        rate: args.rate,
        seed: args.seed,
        content_bytes: args.content_bytes,
        max_events: args.max_events,
        batch: args.batch,
        concurrency: args.concurrency,
        site: args.site,
    };
    let report = match run(options).await {
        Ok(report) => report,
        Err(
            e @ (SimulateError::Options(_) | SimulateError::Setup(_) | SimulateError::Client(_)),
        ) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        out(format_args!("{}", serde_json::to_string(&report)?))?;
    } else {
        out(format_args!("{report}"))?;
    }
    Ok(if report.error_count() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn serve(
    options: ServeOptions,
    demo: Option<srs_sim::demo::DemoOptions>,
    log: Option<JetStreamOptions>,
    clock: Option<Arc<dyn srs_domain::time::Clock>>,
) -> anyhow::Result<ExitCode> {
    // The port first: a start that cannot listen creates nothing.
    let listener = Server::bind(&options.listen).await?;
    let mut prepared = None;
    if demo.is_some() {
        // An empty directory, a demo whose seeding never finished (emptied
        // here), or a finished demo (resumed); anything else is refused
        // untouched.
        match srs_sim::demo::prepare_dir(&options.data) {
            Ok(found) => prepared = Some(found),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let data = options.data.clone();
    let clock = clock.unwrap_or_else(|| Arc::new(srs_domain::time::SystemClock));
    let server = match Server::open_bound_with_log(options, log, clock, None, listener).await {
        Ok(server) => server,
        Err(e @ (ServeError::Locked(_) | ServeError::LogMismatch(_) | ServeError::Config(_))) => {
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
    let mut fleet = None;
    if prepared == Some(srs_sim::demo::Prepared::Resume) {
        match srs_sim::demo::resume(server.state()).await {
            Ok(plan) => {
                println!(
                    "srs: demo resumed: its servers are back at work (tokens in {})",
                    data.display()
                );
                fleet = Some(srs_sim::demo::Fleet::start(server.state(), plan));
            }
            Err(e) => {
                eprintln!("error: resuming the demo: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    } else if let Some(demo) = demo {
        let secret = server
            .bootstrap_secret()
            .ok_or_else(|| anyhow::anyhow!("the demo needs a fresh admin token"))?
            .to_string();
        eprintln!("srs: seeding the demo ({} recordings)...", demo.recordings);
        let seeded = match srs_sim::demo::seed(server.state(), &secret, &demo).await {
            Ok(seeded) => seeded,
            Err(e) => {
                // All or nothing: the next `--demo` start finds an empty directory.
                drop(server);
                let emptied = srs_sim::demo::discard(&data);
                eprintln!("error: seeding the demo failed: {e}");
                match emptied {
                    Ok(()) => eprintln!(
                        "srs: the partly seeded data directory {} was emptied; start again",
                        data.display()
                    ),
                    Err(e) => eprintln!("error: {e}"),
                }
                return Ok(ExitCode::from(2));
            }
        };
        println!(
            "{}",
            srs_sim::demo::banner(&seeded.summary, &format!("http://{addr}"), &secret)
        );
        fleet = Some(srs_sim::demo::Fleet::start(server.state(), seeded.fleet));
    }
    println!("srs: listening on http://{addr}");
    // Tests and scripts read the line above from a pipe: make it visible now.
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, "serving");
    // The demo fleet stops before the server drains, so none of its calls
    // meets a closing server.
    let signal = async move {
        shutdown_signal().await;
        if let Some(fleet) = fleet {
            fleet.stop().await;
        }
    };
    server.run(signal).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_a_scheme_a_host_and_maybe_a_port() {
        assert_eq!(
            origin("https://Dashboard.Example/").as_deref(),
            Ok("https://dashboard.example")
        );
        assert_eq!(
            origin(" http://localhost:3000").as_deref(),
            Ok("http://localhost:3000")
        );
        assert_eq!(
            origin("http://[::1]:8080").as_deref(),
            Ok("http://[::1]:8080")
        );
        for bad in [
            "*",
            "dashboard.example",
            "ftp://dashboard.example",
            "https://",
            "https://dashboard.example/app",
            "https://user@dashboard.example",
            "https://a.example,https://b.example",
        ] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bench_passes_every_argument_on() {
        let cli =
            Cli::try_parse_from(["srs", "bench", "log", "--json", "--help", "--seconds", "1"])
                .unwrap();
        let Command::Bench { args } = cli.command else {
            panic!("not bench");
        };
        assert_eq!(args, ["log", "--json", "--help", "--seconds", "1"]);
    }

    #[test]
    fn log_url_excludes_what_would_name_another_log() {
        let refused: [&[&str]; 5] = [
            &[
                "srs",
                "state",
                "--log-url",
                "nats://a",
                "--data",
                "d",
                "--as-of",
                "1",
                "s",
            ],
            &["srs", "export", "--log-url", "nats://a", "--data", "d", "f"],
            &["srs", "import", "--log-url", "nats://a", "--data", "d", "f"],
            &[
                "srs",
                "replay",
                "--log-url",
                "nats://a",
                "--url",
                "http://b",
                "--token",
                "t",
            ],
            &[
                "srs",
                "export",
                "--log-url",
                "nats://a",
                "--url",
                "http://b",
                "--token",
                "t",
                "f",
            ],
        ];
        for args in refused {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}"
            );
        }
        // `replay` keeps --data for the keys; defaults never conflict.
        for args in [
            &["srs", "replay", "--log-url", "nats://a", "--data", "d"][..],
            &["srs", "state", "--log-url", "nats://a", "--as-of", "1", "s"],
            &[
                "srs",
                "import",
                "--log-url",
                "nats://a",
                "--log-stream",
                "x",
                "f",
            ],
            &["srs", "export", "--data", "d", "f"],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        let cli = Cli::try_parse_from([
            "srs",
            "import",
            "--log-url",
            "nats://a",
            "--log-stream",
            "x",
            "f",
        ])
        .unwrap();
        let Command::Import(args) = cli.command else {
            panic!("not import");
        };
        let options = args.log.jetstream().unwrap();
        assert_eq!(
            (options.urls, options.stream),
            (vec!["nats://a".to_owned()], "x".to_owned())
        );
    }

    #[test]
    fn bench_without_srs_bench_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(bench_in(dir.path(), &[]).unwrap(), ExitCode::from(2));
    }

    #[cfg(unix)]
    #[test]
    fn bench_runs_srs_bench_and_passes_its_exit_code_on() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join(BENCH_EXE);
        let seen = dir.path().join("args");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$@\" > {}\nexit 3\n", seen.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let code = bench_in(dir.path(), &["log".into(), "--json".into()]).unwrap();
        assert_eq!(code, ExitCode::from(3));
        assert_eq!(std::fs::read_to_string(&seen).unwrap(), "log --json\n");
    }

    #[test]
    fn the_page_cache_defaults_to_64_mib_and_refuses_what_cannot_work() {
        let cache = |args: &[&str]| {
            Cli::try_parse_from(["srs", "serve"].iter().chain(args)).map(|cli| match cli.command {
                Command::Serve { cache_mb, .. } => cache_mb,
                _ => panic!("not serve"),
            })
        };
        assert_eq!(cache(&[]).unwrap(), srs_api::server::DEFAULT_CACHE_MB);
        assert_eq!(cache(&["--cache-mb", "512"]).unwrap(), 512);
        for bad in ["4", "0", "lots", "100000"] {
            let refused = cache(&["--cache-mb", bad]).unwrap_err().to_string();
            assert!(refused.contains("--cache-mb"), "{bad}: {refused}");
        }
    }

    #[test]
    fn cors_origins_repeat_or_come_comma_separated() {
        let cli = Cli::try_parse_from([
            "srs",
            "serve",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "https://b.example,http://localhost:3000",
        ])
        .unwrap();
        let Command::Serve { cors_origins, .. } = cli.command else {
            panic!("not serve");
        };
        assert_eq!(
            cors_origins,
            [
                "https://a.example",
                "https://b.example",
                "http://localhost:3000"
            ]
        );
    }
}
