//! `srs backup` and `srs restore` on the command line.
//!
//! Exit codes: 0 done; 1 a check failed (a backup file that does not
//! verify, a wrong passphrase or key file); 2 an error (bad flags, a
//! directory in use without `--url`, a non-empty restore target, storage
//! or network failure).

use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use srs_domain::actor::Actor;
use srs_replay::{DataDir, ReplayError};
use zeroize::Zeroizing;

use srs_api::backup::{
    check_only, record_backup, restore, write_backup, BackupError, BackupSummary, Secret, Wrapping,
    WrappingKey,
};
use srs_api::content::ContentStore;

/// Where the backup's keys are wrapped from.
#[derive(Args, Debug, Clone)]
pub struct SecretArgs {
    /// A file whose first line is the passphrase (or set
    /// SRS_BACKUP_PASSPHRASE; there is no flag taking the passphrase itself,
    /// which other users could read in `ps`).
    #[arg(long, conflicts_with = "key_file")]
    pub passphrase_file: Option<PathBuf>,
    /// A file of exactly 32 random bytes, the wrapping key itself.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Data directory (sled database and content); the server must be stopped (else use --url).
    #[arg(long, env = "SRS_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Back up through this running server instead (e.g. https://srs.example:8443).
    #[arg(long, env = "SRS_URL", requires = "token")]
    pub url: Option<String>,
    /// An ADMIN token of all sites, for --url.
    #[arg(long, env = "SRS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Argon2id memory for the passphrase, in MiB (stored in the file).
    #[arg(long, default_value_t = srs_api::backup::DEFAULT_M_COST_KIB / 1024)]
    pub kdf_memory_mib: u32,
    /// The backup file to write.
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The data directory to create (it must not exist, or be empty).
    #[arg(long, env = "SRS_DATA")]
    pub data: PathBuf,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// The backup file to read.
    pub file: PathBuf,
}

const PASSPHRASE_ENV: &str = "SRS_BACKUP_PASSPHRASE";

fn passphrase(args: &SecretArgs) -> Result<Option<Zeroizing<Vec<u8>>>, BackupError> {
    let mut text = if let Some(path) = &args.passphrase_file {
        Zeroizing::new(std::fs::read(path).map_err(|e| {
            BackupError::Invalid(format!(
                "reading the passphrase file {}: {e}",
                path.display()
            ))
        })?)
    } else if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
        Zeroizing::new(value.into_encoded_bytes())
    } else {
        return Ok(None);
    };
    // The first line only (a file written by `echo` ends with a newline).
    if let Some(end) = text.iter().position(|&b| b == b'\n') {
        text.truncate(end);
    }
    if text.last() == Some(&b'\r') {
        text.pop();
    }
    if text.is_empty() {
        return Err(BackupError::Invalid("the passphrase is empty".into()));
    }
    Ok(Some(text))
}

fn key_file(path: &Path) -> Result<WrappingKey, BackupError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        BackupError::Invalid(format!("reading the key file {}: {e}", path.display()))
    })?);
    WrappingKey::from_bytes(&bytes).map_err(|_| {
        BackupError::Invalid(format!(
            "the key file {} must hold exactly 32 bytes (e.g. `head -c 32 /dev/urandom > key`), it holds {}",
            path.display(),
            bytes.len()
        ))
    })
}

/// The secret a restore uses.
fn secret(args: &SecretArgs) -> Result<Secret, BackupError> {
    if let Some(path) = &args.key_file {
        return Ok(Secret::Key(key_file(path)?));
    }
    passphrase(args)?.map(Secret::Passphrase).ok_or_else(|| {
        BackupError::Invalid(format!(
            "the backup's keys are encrypted: pass --passphrase-file F, set {PASSPHRASE_ENV}, or pass --key-file F"
        ))
    })
}

/// The wrapping (and its key) a new backup uses.
fn new_wrapping(args: &BackupArgs) -> Result<(Wrapping, WrappingKey), BackupError> {
    match secret(&args.secret)? {
        Secret::Key(key) | Secret::Derived(key) => Ok((Wrapping::KeyFile, key)),
        Secret::Passphrase(passphrase) => {
            let memory = args.kdf_memory_mib.clamp(8, 4096) * 1024;
            let wrapping = Wrapping::new_argon2id(memory);
            let key = wrapping.derive(&passphrase)?;
            Ok((wrapping, key))
        }
    }
}

fn fail(e: BackupError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        BackupError::BadFile(_) | BackupError::WrongKey => ExitCode::from(1),
        BackupError::Replay(ReplayError::Locked(_)) => {
            eprintln!("hint: stop the server, or back up through it with --url and --token");
            ExitCode::from(2)
        }
        _ => ExitCode::from(2),
    }
}

fn partial_of(file: &Path) -> PathBuf {
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    PathBuf::from(partial)
}

/// `srs backup`.
pub async fn backup_command(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let (wrapping, key) = match new_wrapping(&args) {
        Ok(w) => w,
        Err(e) => return Ok(fail(e)),
    };
    let partial = partial_of(&args.file);
    let result = match (&args.url, &args.token) {
        (Some(url), Some(token)) => remote_backup(url, token, &wrapping, &key, &partial).await,
        _ => local_backup(&args.data, &wrapping, &key, &partial).await,
    };
    let result = result.and_then(|summary| {
        std::fs::rename(&partial, &args.file)?;
        Ok(summary)
    });
    match result {
        Ok(summary) => {
            eprintln!(
                "srs: backed up the log up to position {} ({} events), {} keys, {} chunks ({} bytes); sha256 {}",
                summary.position,
                summary.events,
                summary.keys,
                summary.chunks,
                summary.chunk_bytes,
                summary.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Ok(fail(e))
        }
    }
}

async fn local_backup(
    data: &Path,
    wrapping: &Wrapping,
    key: &WrappingKey,
    partial: &Path,
) -> Result<BackupSummary, BackupError> {
    // A node of a JetStream log keeps only read models here: its log,
    // content and keys are in the cluster, which a running node backs up.
    if data.join(srs_api::server::LOG_ID_FILE).exists() {
        return Err(BackupError::Invalid(format!(
            "the data directory {} serves a JetStream log (--log-url): its log, content and keys are in the cluster; back up through a running node with --url and --token",
            data.display()
        )));
    }
    let dir = DataDir::open(data)?;
    let content = ContentStore::open(data)
        .map_err(|e| BackupError::Source(format!("opening the content store: {e}")))?;
    let out = BufWriter::with_capacity(1 << 20, std::fs::File::create(partial)?);
    let (out, summary) = write_backup(&dir.store, &content, None, wrapping, key, out)?;
    out.into_inner()
        .map_err(|e| BackupError::Io(e.into_error()))?
        .sync_all()?;
    let by = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    record_backup(&dir.store, &summary, Actor::system("backup"), &by).await?;
    Ok(summary)
}

async fn remote_backup(
    url: &str,
    token: &str,
    wrapping: &Wrapping,
    key: &WrappingKey,
    partial: &Path,
) -> Result<BackupSummary, BackupError> {
    let client = srs_client::Client::new(url, Some(token));
    let endpoint = format!("{}/backup", client.base());
    if endpoint.starts_with("http://") && !is_loopback(&endpoint) {
        eprintln!(
            "srs: warning: {endpoint} is not TLS: the wrapping key of this backup crosses the network in clear"
        );
    }
    let body = serde_json::json!({ "wrapping": wrapping, "wrapping_key": key.to_hex() });
    let mut response = client
        .authorized(client.http().post(&endpoint))
        .json(&body)
        .send()
        .await
        .map_err(|e| BackupError::Invalid(format!("cannot reach {endpoint}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(BackupError::Invalid(format!(
            "the server refused the backup ({status}): {text}"
        )));
    }
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(partial)?);
    while let Some(piece) = response
        .chunk()
        .await
        .map_err(|e| BackupError::Invalid(format!("the backup stream broke off: {e}")))?
    {
        out.write_all(&piece)?;
    }
    out.into_inner()
        .map_err(|e| BackupError::Io(e.into_error()))?
        .sync_all()?;
    // What arrived is checked like a restore checks it (nothing written).
    let summary = check_only(partial, Secret::Derived(key.clone()))?;
    Ok(summary)
}

fn is_loopback(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or_default();
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// `srs restore`.
pub async fn restore_command(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let secret = match secret(&args.secret) {
        Ok(secret) => secret,
        Err(e) => return Ok(fail(e)),
    };
    let (file, target) = (args.file.clone(), args.data.clone());
    let result = tokio::task::spawn_blocking(move || restore(&file, &target, secret)).await?;
    match result {
        Ok(summary) => {
            println!(
                "restored the log up to position {} ({} events, head hash {}), {} keys, {} chunks ({} bytes) into {}",
                summary.position,
                summary.events,
                summary.head_hash,
                summary.keys,
                summary.chunks,
                summary.chunk_bytes,
                args.data.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(fail(e)),
    }
}
