//! `srs replay`, `srs state`, `srs rebuild`, `srs projections`,
//! `srs export` and `srs import`: the command-line side of `srs_replay`.
//!
//! Each takes `--data DIR` (`SRS_DATA`, default `./data`). A directory held
//! by a running `srs serve` is never written behind its back: `export` and
//! `state` read a checked private copy of it (`srs_replay::DataDir::open_snapshot`;
//! such an export is not recorded in the server's log), the others say so
//! and exit 2. Every one of them can go through the server instead
//! (`--url URL --token T`, env `SRS_URL` / `SRS_TOKEN`): `replay` (with
//! `--follow` to keep tailing), `rebuild`, `projections`, `export` (the
//! server streams `GET /log/export` and records the export as
//! `LogExported` by the caller) and `state` (which fetches the export up
//! to the head the same way, imports it into a private temporary
//! directory and computes the state there; it is recorded as an export
//! too, since the whole log left the server).
//!
//! # The log in a JetStream stream
//!
//! `replay`, `state`, `export` and `import` also take `--log-url URLS
//! [--log-stream NAME]` (the log `srs serve --log-url` keeps): the log is
//! then the stream's, opened over `srs_log_jetstream::JetStreamBackend`,
//! and each command does the same work over it (the tools take an
//! [`EventLog`], whatever its backend). `--log-url` excludes `--url`, and
//! `--data` where the data directory would only supply the log (`state`,
//! `export`, `import`); `replay` keeps `--data` for the keys that open
//! sealed session data (a node's data directory). The reading commands
//! refuse a stream that does not exist (they never create one); `import`
//! creates it, refuses one that holds anything before it writes, and
//! verifies the chain it wrote. An export from a stream is recorded in
//! that stream (`LogExported`), as from a data directory. `rebuild` and
//! `projections` stay with a node's data directory (its read models).
//!
//! Exit codes: 0 done; 1 a check failed (an export file that does not
//! verify); 2 an error (bad flags, a directory in use, a non-empty import
//! target, nothing at that point in time, storage or network failure).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::out;
use serde_json::{json, Value};
use srs_domain::log::{EventLog, LogBackend, StoreOptions};
use srs_domain::model::DomainEvent;
use srs_domain::time::Timestamp;
use srs_log_jetstream::{JetStreamBackend, JetStreamOptions};
use srs_replay::{AsOf, DataDir, EventWriter, Filter, Format, ReplayError, ShownEvent};

/// Where a command reads: the data directory, or a running server.
#[derive(Args, Debug, Clone)]
pub struct Source {
    /// Data directory (sled database).
    #[arg(long, env = "SRS_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Go through this running server instead (e.g. http://127.0.0.1:8080).
    #[arg(long, env = "SRS_URL", requires = "token")]
    pub url: Option<String>,
    /// The bearer token for --url (ADMIN or AUDITOR for replay, ADMIN for rebuild).
    #[arg(long, env = "SRS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// How `srs replay` prints events.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Jsonl,
    Table,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("replay_from").args(["url", "log_url"])))]
pub struct ReplayArgs {
    #[command(flatten)]
    pub source: Source,
    /// The log in a JetStream stream; sealed session data is opened with
    /// the cluster's keys (`--cluster-key-file`), else with the key files
    /// of the data directory `--data` names (a log imported from it).
    #[command(flatten)]
    pub log: crate::LogArgs,
    /// With --log-url: the cluster key file the `srs serve` nodes of the
    /// stream are given; the recordings' keys are then read from the
    /// cluster (read only) to open sealed session data.
    #[arg(
        long,
        env = "SRS_CLUSTER_KEY_FILE",
        value_name = "PATH",
        requires = "log_url"
    )]
    pub cluster_key_file: Option<PathBuf>,
    /// First log position (inclusive).
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Last log position (inclusive).
    #[arg(long)]
    pub to: Option<u64>,
    /// Events recorded at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Events recorded before this RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this stream, e.g. recording-<uuid>.
    #[arg(long)]
    pub stream: Option<String>,
    /// Only these event types (repeat the flag for several).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only this actor: principal:<name>, agent:<server id> or system:<component>.
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: OutputFormat,
    /// Keep tailing new events (through a running server: needs --url).
    #[arg(long)]
    pub follow: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("state_from").args(["data", "url", "log_url"])))]
pub struct StateArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub log: crate::LogArgs,
    /// A log position or an RFC 3339 time.
    #[arg(long)]
    pub as_of: String,
    /// A read model instead of an aggregate: access-restrictions.
    #[arg(long, conflicts_with = "stream")]
    pub projection: Option<String>,
    /// The aggregate's stream, e.g. recording-<uuid>.
    #[arg(required_unless_present = "projection")]
    pub stream: Option<String>,
}

#[derive(Args, Debug)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub source: Source,
    /// Projections to rebuild.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Rebuild every projection.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct ProjectionsArgs {
    #[command(flatten)]
    pub source: Source,
    /// One JSON object per projection and line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("export_from").args(["data", "url", "log_url"])))]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub log: crate::LogArgs,
    /// The file to write (`-` for stdout).
    pub file: PathBuf,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("import_into").args(["data", "log_url"])))]
pub struct ImportArgs {
    /// Data directory to create (or an empty one).
    #[arg(long, env = "SRS_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Import into a JetStream stream (created if missing; it must be empty).
    #[command(flatten)]
    pub log: crate::LogArgs,
    /// The export file to read.
    pub file: PathBuf,
}

/// Prints `e` and maps it to an exit code.
/// Opens a data directory for a reading command, through a private copy
/// when it is read-only (see `srs_replay::DataDir::open_read_only`).
pub fn open_to_read(path: &Path) -> Result<DataDir, ReplayError> {
    let data = DataDir::open_read_only(path)?;
    if data.is_copy() {
        eprintln!(
            "srs: {} is read-only: reading a private copy of its database",
            path.display()
        );
    }
    Ok(data)
}

/// The log a command reads: a data directory's or a JetStream stream's.
/// The tools take the log itself ([`EventLog`] over its backend), so both
/// go through the same code.
enum OpenedLog {
    Dir(DataDir),
    Stream(EventLog<DomainEvent>),
}

impl OpenedLog {
    fn store(&self) -> &EventLog<DomainEvent> {
        match self {
            OpenedLog::Dir(data) => &data.store,
            OpenedLog::Stream(store) => store,
        }
    }
}

/// Opens the log kept in a JetStream stream for a command that reads it.
/// The stream must exist: a mistyped name is refused, not created empty.
fn open_stream(options: &JetStreamOptions) -> Result<EventLog<DomainEvent>, ReplayError> {
    if !srs_log_jetstream::stream_exists(options)? {
        return Err(ReplayError::NotFound(format!(
            "there is no stream {} on {}",
            options.stream,
            options.urls.join(",")
        )));
    }
    let backend = JetStreamBackend::open(options)?;
    Ok(EventLog::new(Arc::new(backend), StoreOptions::default())?)
}

/// The recordings' keys kept in the cluster of `options`, unwrapped with
/// the cluster key in `file`.
fn cluster_keys(
    options: &JetStreamOptions,
    file: &Path,
) -> Result<srs_domain::seal::KeyRing, String> {
    let key = srs_log_jetstream::ClusterKey::load(file).map_err(|e| e.to_string())?;
    let cluster =
        srs_log_jetstream::ClusterContent::open(options, key).map_err(|e| e.to_string())?;
    Ok(srs_domain::seal::KeyRing::with_store(Arc::new(
        cluster.keys,
    )))
}

fn fail(e: ReplayError) -> ExitCode {
    match &e {
        ReplayError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
            // The reader went away (`| head`): not an error of ours.
            return ExitCode::SUCCESS;
        }
        ReplayError::Locked(_) => {
            eprintln!("error: {e}");
            eprintln!("hint: stop the server, or (where the command supports it) pass --url and --token to go through it");
            return ExitCode::from(2);
        }
        _ => {}
    }
    eprintln!("error: {e}");
    match e {
        ReplayError::BadFile(_) => ExitCode::from(1),
        _ => ExitCode::from(2),
    }
}

fn peak_note() -> String {
    peak_rss_bytes()
        .map(|b| format!(" (peak memory {} KiB)", b / 1024))
        .unwrap_or_default()
}

/// Peak resident set size of this process in bytes (`VmHWM`), if the
/// platform reports it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn parse_time(text: &Option<String>, flag: &str) -> Result<Option<Timestamp>, ReplayError> {
    text.as_deref()
        .map(|t| {
            Timestamp::parse_rfc3339(t)
                .map_err(|_| ReplayError::Invalid(format!("{flag} `{t}` is not an RFC 3339 time")))
        })
        .transpose()
}

/// `srs replay`.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let filter = match (
        parse_time(&args.since, "--since"),
        parse_time(&args.until, "--until"),
    ) {
        (Ok(since), Ok(until)) => Filter {
            from: args.from,
            to: args.to,
            since,
            until,
            stream: args.stream.clone(),
            types: args.types.clone(),
            actor: args.actor.clone(),
        },
        (Err(e), _) | (_, Err(e)) => return Ok(fail(e)),
    };
    let format = match args.format {
        OutputFormat::Jsonl => Format::Jsonl,
        OutputFormat::Table => Format::Table,
    };
    if let (Some(url), Some(token)) = (&args.source.url, &args.source.token) {
        let remote = Remote::new(url, token);
        return Ok(remote_replay(&remote, &args, format)
            .await
            .map_or_else(fail, |()| ExitCode::SUCCESS));
    }
    if args.follow {
        eprintln!(
            "error: --follow needs --url and --token: it follows what a running server appends"
        );
        return Ok(ExitCode::from(2));
    }
    let log = match args.log.jetstream() {
        Some(options) => open_stream(&options).map(OpenedLog::Stream),
        None => open_to_read(&args.source.data).map(OpenedLog::Dir),
    };
    let log = match log {
        Ok(log) => log,
        Err(e) => return Ok(fail(e)),
    };
    let keys = match (args.log.jetstream(), &args.cluster_key_file) {
        // The cluster's keys, unwrapped with the cluster key.
        (Some(options), Some(file)) => match cluster_keys(&options, file) {
            Ok(keys) => keys,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        _ => {
            if matches!(log, OpenedLog::Stream(_))
                && !srs_domain::seal::KeyRing::dir_of(&args.source.data).is_dir()
            {
                eprintln!(
                    "srs: no keys in {}: sealed session data shows as shredded; pass --cluster-key-file (or --data of the directory the log was imported from)",
                    args.source.data.display()
                );
            }
            // The keys of the directory given (not of a private read-only
            // copy: key files are read in place, never copied).
            srs_domain::seal::KeyRing::read_only(&args.source.data)
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
    match srs_replay::replay_shown(log.store(), &keys, &filter, format, &mut out) {
        Ok(n) => {
            eprintln!("srs: {n} events{}", peak_note());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(fail(e)),
    }
}

/// Opens a data directory for `export` or `state`: also one a running
/// server holds, through a checked private copy.
fn open_snapshot(path: &Path) -> Result<DataDir, ReplayError> {
    let data = DataDir::open_snapshot(path)?;
    if data.is_copy() {
        eprintln!(
            "srs: {} is read-only or held by a running server: reading a private copy of its database",
            path.display()
        );
    }
    Ok(data)
}

/// `srs state`.
pub async fn state(args: StateArgs) -> anyhow::Result<ExitCode> {
    let as_of: AsOf = match args.as_of.parse() {
        Ok(as_of) => as_of,
        Err(e) => return Ok(fail(e)),
    };
    // Through a server: its log, fetched as an export, in a private directory.
    let mut fetched = None;
    if let (Some(url), Some(token)) = (&args.source.url, &args.source.token) {
        match fetch_log(&Remote::new(url, token)).await {
            Ok(dir) => fetched = Some(dir),
            Err(e) => return Ok(fail(e)),
        }
    }
    let path = fetched
        .as_ref()
        .map_or(args.source.data.clone(), |dir| dir.path().join("data"));
    let log = match args.log.jetstream() {
        Some(options) => open_stream(&options).map(OpenedLog::Stream),
        None => open_snapshot(&path).map(OpenedLog::Dir),
    };
    let log = match log {
        Ok(log) => log,
        Err(e) => return Ok(fail(e)),
    };
    let value = match (&args.projection, &args.stream) {
        (Some(name), _) => srs_replay::projection_state(log.store(), name, as_of).await,
        (None, Some(stream)) => srs_replay::aggregate_state(log.store(), stream, as_of).await,
        (None, None) => Err(ReplayError::Invalid("name a stream or --projection".into())),
    };
    match value {
        Ok(value) => {
            out(format_args!("{}", serde_json::to_string_pretty(&value)?))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(fail(e)),
    }
}

/// `srs export`.
pub async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    if let (Some(url), Some(token)) = (&args.source.url, &args.source.token) {
        return Ok(remote_export(&Remote::new(url, token), &args.file)
            .await
            .map_or_else(fail, |summary| {
                eprintln!(
                    "srs: exported {} events through the server, head position {} hash {}, sha256 {}",
                    summary.count, summary.head.position, summary.head.hash, summary.sha256
                );
                ExitCode::SUCCESS
            }));
    }
    let log = match args.log.jetstream() {
        Some(options) => open_stream(&options).map(OpenedLog::Stream),
        None => open_snapshot(&args.source.data).map(OpenedLog::Dir),
    };
    let log = match log {
        Ok(log) => log,
        Err(e) => return Ok(fail(e)),
    };
    let result = if args.file.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
        srs_replay::export(log.store(), &mut out)
    } else {
        export_to_file(log.store(), &args.file)
    };
    let result = match (result, &log) {
        (Ok(summary), OpenedLog::Dir(data)) if data.is_copy() => {
            // Nothing can be written to a read-only directory.
            eprintln!(
                "srs: warning: {} is read-only or held by a server: this export is not recorded in its log (`srs export --url` is)",
                data.path.display()
            );
            Ok(summary)
        }
        (Ok(summary), _) => {
            let by = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            srs_replay::record_export(log.store(), &summary, &by)
                .await
                .map(|_| summary)
        }
        (Err(e), _) => Err(e),
    };
    match result {
        Ok(summary) => {
            eprintln!(
                "srs: exported {} events, head position {} hash {}, sha256 {}{}",
                summary.count,
                summary.head.position,
                summary.head.hash,
                summary.sha256,
                peak_note()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(fail(e)),
    }
}

/// Writes beside the target and renames, so a failed export leaves no
/// file that looks complete. A target that exists and is not a regular
/// file (a device such as `/dev/null` or `/dev/stdout`, a pipe) is written
/// straight into: renaming over it would replace the device with a file.
fn export_to_file(
    store: &EventLog<DomainEvent>,
    file: &Path,
) -> Result<srs_replay::ExportSummary, ReplayError> {
    if std::fs::metadata(file).is_ok_and(|meta| !meta.is_file()) {
        let mut out = BufWriter::with_capacity(
            256 * 1024,
            std::fs::OpenOptions::new().write(true).open(file)?,
        );
        let summary = srs_replay::export(store, &mut out)?;
        out.flush()?;
        return Ok(summary);
    }
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let mut out = BufWriter::with_capacity(256 * 1024, File::create(&partial)?);
        let summary = srs_replay::export(store, &mut out)?;
        out.into_inner()
            .map_err(|e| ReplayError::Io(e.into_error()))?
            .sync_all()?;
        std::fs::rename(&partial, file)?;
        Ok(summary)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// `srs import`: the file checked completely, written into a new data
/// directory's log or an empty JetStream stream (the same import, over
/// the log backend), then the written chain verified.
pub async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut written: Option<Arc<dyn LogBackend>> = None;
    let imported = match args.log.jetstream() {
        Some(options) => {
            let what = format!("stream {} on {}", options.stream, options.urls.join(","));
            srs_replay::import_with(&args.file, &what, || {
                let backend: Arc<dyn LogBackend> = Arc::new(JetStreamBackend::open(&options)?);
                written = Some(backend.clone());
                Ok(backend)
            })
        }
        None => {
            let what = args.data.display().to_string();
            srs_replay::import_with(&args.file, &what, || {
                let data = DataDir::open_or_create(&args.data)?;
                let backend = data.store.backend();
                written = Some(backend.clone());
                Ok(backend)
            })
        }
    };
    let summary = match imported {
        Ok(summary) => summary,
        Err(e) => {
            let refused = matches!(e, srs_replay::ReplayError::NotEmpty(_));
            let code = fail(e);
            if written.is_some() && !refused {
                // Whole commits are stored or not, but an import is many.
                eprintln!(
                    "srs: the log may now hold the first part of the file without its head: \
                     run the same import again to complete it"
                );
            }
            return Ok(code);
        }
    };
    out(format_args!(
        "imported {} events, head position {} hash {}",
        summary.count, summary.head.position, summary.head.hash
    ))?;
    // What was written, read back from storage and walked as `srs verify`
    // does, through the handle that wrote it (reopening the directory
    // right away could race the release of the import's own handle).
    let Some(backend) = written else {
        return Err(anyhow::anyhow!("the import wrote into no log"));
    };
    crate::report_verified(&*backend, 1)
}

/// `srs projections`.
pub async fn projections(args: ProjectionsArgs) -> anyhow::Result<ExitCode> {
    let rows: Vec<Value> = if let (Some(url), Some(token)) = (&args.source.url, &args.source.token)
    {
        let remote = Remote::new(url, token);
        match remote
            .query(
                "{ projections { name version generation position head lag eventsPerSec state lastError } }",
                json!({}),
            )
            .await
        {
            Ok(data) => data["projections"].as_array().cloned().unwrap_or_default(),
            Err(e) => return Ok(fail(e)),
        }
    } else {
        let data = match open_to_read(&args.source.data) {
            Ok(data) => data,
            Err(e) => return Ok(fail(e)),
        };
        match srs_replay::statuses(&data) {
            Ok(rows) => rows
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?,
            Err(e) => return Ok(fail(e)),
        }
    };
    if args.json {
        for row in &rows {
            out(format_args!("{row}"))?;
        }
    } else {
        use srs_replay::table::{Align, Table};
        let mut table = Table::new(
            std::io::stdout().lock(),
            &[
                ("NAME", Align::Left),
                ("VERSION", Align::Right),
                ("POSITION", Align::Right),
                ("HEAD", Align::Right),
                ("LAG", Align::Right),
                ("STATE", Align::Left),
            ],
        );
        for row in &rows {
            table.row(
                ["name", "version", "position", "head", "lag", "state"]
                    .iter()
                    .map(|field| match &row[*field] {
                        Value::String(text) => text.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    })
                    .collect(),
            )?;
        }
        table.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(target: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(target),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events, {per_sec}, ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `srs rebuild`.
pub async fn rebuild(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    if let (Some(url), Some(token)) = (&args.source.url, &args.source.token) {
        let remote = Remote::new(url, token);
        return Ok(remote_rebuild(&remote, &args.names)
            .await
            .map_or_else(fail, |()| ExitCode::SUCCESS));
    }
    let data = match DataDir::open(&args.source.data) {
        Ok(data) => data,
        Err(e) => return Ok(fail(e)),
    };
    let bar = progress_bar(data.head());
    let result = srs_replay::rebuild(&data, &args.names, |tick| {
        bar.set_length(tick.target);
        bar.set_position(tick.position);
    })
    .await;
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            out(format_args!(
                "rebuilt to position {}: {} events read in {:.2} s ({:.0} events/s)",
                report.target,
                report.events,
                report.elapsed.as_secs_f64(),
                report.events_per_sec
            ))?;
            let mut failed = false;
            for (name, outcome) in &report.projections {
                match outcome {
                    Ok(position) => out(format_args!("  {name}: at position {position}"))?,
                    Err(e) => {
                        failed = true;
                        out(format_args!("  {name}: FAILED: {e}"))?;
                    }
                }
            }
            Ok(ExitCode::from(if failed { 1 } else { 0 }))
        }
        Err(e) => Ok(fail(e)),
    }
}

/// A running `srs serve`, spoken to over GraphQL.
struct Remote {
    client: srs_client::Client,
}

/// Downloads the server's `GET /log/export` into `file` (`-`: stdout; a
/// device or pipe is written into). The download goes to a private
/// temporary file first and is checked as an export (chain, trailer)
/// before anything reaches `file`, so a broken-off transfer leaves no
/// file that looks complete.
async fn remote_export(
    remote: &Remote,
    file: &Path,
) -> Result<srs_replay::ExportSummary, ReplayError> {
    let url = format!("{}/log/export", remote.client.base());
    let mut response = remote
        .client
        .authorized(remote.client.http().get(&url))
        .send()
        .await
        .map_err(|e| ReplayError::Invalid(format!("cannot reach {url}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        let body: Value = response.json().await.unwrap_or_default();
        return Err(ReplayError::Invalid(format!(
            "the server refused: {} ({})",
            body["message"].as_str().unwrap_or("no message"),
            body["code"].as_str().unwrap_or(status.as_str())
        )));
    }
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let to_stdout = file.as_os_str() == "-";
    let device = !to_stdout && std::fs::metadata(file).is_ok_and(|meta| !meta.is_file());
    let (_spool, partial) = if to_stdout || device {
        let spool = tempfile::Builder::new().prefix("srs-export-").tempdir()?;
        let path = spool.path().join("log.export");
        (Some(spool), path)
    } else {
        (None, PathBuf::from(partial))
    };
    let result = async {
        let mut out = BufWriter::with_capacity(256 * 1024, File::create(&partial)?);
        while let Some(piece) = response
            .chunk()
            .await
            .map_err(|e| ReplayError::Invalid(format!("the export broke off: {e}")))?
        {
            out.write_all(&piece)?;
        }
        out.into_inner()
            .map_err(|e| ReplayError::Io(e.into_error()))?
            .sync_all()?;
        let checked = srs_replay::check_export(&partial, |_| Ok(()))?;
        let sha256 = trailer_sha256(&partial)?;
        if to_stdout || device {
            let mut from = File::open(&partial)?;
            if to_stdout {
                std::io::copy(&mut from, &mut std::io::stdout().lock())?;
            } else {
                let mut to = std::fs::OpenOptions::new().write(true).open(file)?;
                std::io::copy(&mut from, &mut to)?;
                to.flush()?;
            }
        } else {
            std::fs::rename(&partial, file)?;
        }
        Ok(srs_replay::ExportSummary {
            count: checked.count,
            head: checked.head,
            sha256,
        })
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The `sha256` of an export file's trailer (its last line).
fn trailer_sha256(file: &Path) -> Result<String, ReplayError> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = File::open(file)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let tail = String::from_utf8_lossy(&tail);
    let line = tail.trim_end().rsplit('\n').next().unwrap_or_default();
    let trailer: Value = serde_json::from_str(line)?;
    Ok(trailer["trailer"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// The server's log as an export, imported into a private temporary
/// directory (`<dir>/data`) for `srs state --url`.
async fn fetch_log(remote: &Remote) -> Result<tempfile::TempDir, ReplayError> {
    let dir = tempfile::Builder::new().prefix("srs-state-").tempdir()?;
    let file = dir.path().join("log.export");
    remote_export(remote, &file).await?;
    srs_replay::import(&file, &dir.path().join("data"))?;
    std::fs::remove_file(&file)?;
    Ok(dir)
}

impl Remote {
    fn new(url: &str, token: &str) -> Self {
        Remote {
            client: srs_client::Client::new(url, Some(token)),
        }
    }

    /// The `data` of a query; GraphQL errors become `Invalid` with their code.
    async fn query(&self, query: &str, variables: Value) -> Result<Value, ReplayError> {
        let endpoint = self.client.endpoint();
        let response =
            self.client.send(query, variables).await.map_err(|e| {
                ReplayError::Invalid(format!("cannot reach {endpoint}: {}", e.message))
            })?;
        let body = response.body;
        if let Some(error) = body["errors"].as_array().and_then(|e| e.first()) {
            return Err(ReplayError::Invalid(format!(
                "the server refused: {} ({})",
                error["message"].as_str().unwrap_or("no message"),
                error["extensions"]["code"].as_str().unwrap_or("no code")
            )));
        }
        if !body.is_object() {
            return Err(ReplayError::Invalid(format!(
                "{endpoint} answered HTTP {}: {body}",
                response.status
            )));
        }
        Ok(body["data"].clone())
    }
}

const HISTORY_QUERY: &str = "query($filter: HistoryFilter, $after: String) {
  history(filter: $filter, first: 500, after: $after) {
    edges { node { position stream version eventId type recordedAt actor correlationId causationId payload hash } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// Pages through the server's `history`, then (with `--follow`) asks again
/// every second from where it stopped.
async fn remote_replay(
    remote: &Remote,
    args: &ReplayArgs,
    format: Format,
) -> Result<(), ReplayError> {
    let mut filter = json!({ "fromPosition": args.from.max(1) });
    if let Some(to) = args.to {
        filter["toPosition"] = json!(to);
    }
    if let Some(stream) = &args.stream {
        filter["stream"] = json!(stream);
    }
    if !args.types.is_empty() {
        filter["types"] = json!(args.types);
    }
    if let Some(actor) = &args.actor {
        filter["actor"] = json!(actor);
    }
    if let Some(since) = &args.since {
        filter["from"] = json!(since);
    }
    if let Some(until) = &args.until {
        filter["to"] = json!(until);
    }
    let stdout = std::io::stdout();
    let mut out = EventWriter::new(stdout.lock(), format);
    let mut after: Option<String> = None;
    loop {
        let data = remote
            .query(HISTORY_QUERY, json!({ "filter": filter, "after": after }))
            .await?;
        let history = &data["history"];
        for edge in history["edges"].as_array().into_iter().flatten() {
            out.event(&shown_event(&edge["node"])?)?;
        }
        if let Some(cursor) = history["pageInfo"]["endCursor"].as_str() {
            after = Some(cursor.to_string());
        }
        if history["pageInfo"]["hasNextPage"].as_bool() == Some(true) {
            continue;
        }
        // Caught up: what is held goes out before the wait (a table
        // lines up over everything up to here).
        out.flush()?;
        let reached_end = args.to.is_some_and(|to| {
            after
                .as_deref()
                .and_then(|c| c.parse::<u64>().ok())
                .is_some_and(|p| p >= to)
        });
        if !args.follow || reached_end {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A GraphQL `history` node as `srs replay` prints it: the same fields,
/// spellings and time format as from a data directory (no `prev_hash`,
/// which GraphQL does not serve).
fn shown_event(node: &Value) -> Result<ShownEvent, ReplayError> {
    let bad = |what: &str| {
        ReplayError::Invalid(format!("the server sent an event without {what}: {node}"))
    };
    let number = |field: &str| {
        node[field]
            .as_u64()
            // A Float (`3.0`) from a server that types it so.
            .or_else(|| {
                node[field]
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| bad(field))
    };
    let text = |field: &str| {
        node[field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| bad(field))
    };
    let recorded_at = text("recordedAt")?;
    let recorded_at = Timestamp::parse_rfc3339(&recorded_at)
        .map_err(|_| bad("an RFC 3339 recordedAt"))?
        .to_rfc3339();
    Ok(ShownEvent {
        position: number("position")?,
        stream: text("stream")?,
        version: number("version")?,
        event_id: text("eventId")?,
        recorded_at,
        actor: text("actor")?,
        correlation_id: text("correlationId")?,
        causation_id: node["causationId"].as_str().map(str::to_owned),
        event_type: text("type")?,
        // The API names fields in camelCase; offline replay prints the
        // stored names, and so does this.
        payload: srs_api::graphql::snake_keys(node["payload"].clone()),
        prev_hash: None,
        hash: text("hash")?,
    })
}

/// Asks the server to rebuild and shows its progress from `projections`.
async fn remote_rebuild(remote: &Remote, names: &[String]) -> Result<(), ReplayError> {
    let names = (!names.is_empty()).then_some(names);
    let mutation = remote.query(
        "mutation($names: [String!]) { rebuildProjections(names: $names) {
            position events target elapsedMs eventsPerSec projections { name position error } } }",
        json!({ "names": names }),
    );
    tokio::pin!(mutation);
    let bar = progress_bar(0);
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    let data = loop {
        tokio::select! {
            done = &mut mutation => break done,
            _ = interval.tick() => {
                if let Ok(status) = remote
                    .query("{ projections { rebuild { position target } } }", json!({}))
                    .await
                {
                    let running = status["projections"].as_array().into_iter().flatten()
                        .filter_map(|p| p["rebuild"].as_object().cloned());
                    let (mut position, mut target) = (u64::MAX, 0u64);
                    for r in running {
                        position = position.min(r["position"].as_u64().unwrap_or(0));
                        target = target.max(r["target"].as_u64().unwrap_or(0));
                    }
                    if target > 0 {
                        bar.set_length(target);
                        bar.set_position(position.min(target));
                    }
                }
            }
        }
    };
    bar.finish_and_clear();
    let report = &data?["rebuildProjections"];
    out(format_args!(
        "rebuilt to position {}: {} events read in {:.2} s ({:.0} events/s)",
        report["target"],
        report["events"],
        report["elapsedMs"].as_f64().unwrap_or(0.0) / 1000.0,
        report["eventsPerSec"].as_f64().unwrap_or(0.0)
    ))?;
    for p in report["projections"].as_array().into_iter().flatten() {
        match p["error"].as_str() {
            None => out(format_args!(
                "  {}: at position {}",
                p["name"].as_str().unwrap_or_default(),
                p["position"]
            ))?,
            Some(e) => out(format_args!(
                "  {}: FAILED: {e}",
                p["name"].as_str().unwrap_or_default()
            ))?,
        }
    }
    Ok(())
}
