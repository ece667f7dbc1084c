//! `srs serve`: open the data directory, start the read models, serve HTTP,
//! shut down cleanly.
//!
//! # Lifecycle
//!
//! 1. [`Server::open`] binds the listener first (`127.0.0.1:0` picks a
//!    free port; the bound address is printed as
//!    `srs: listening on http://<addr>`): a port that is taken fails the
//!    start before anything is created (no data directory, no admin token).
//! 2. It opens the sled database in the data directory. A directory held
//!    by another process is [`ServeError::Locked`] (exit code 2 from the
//!    binary); nothing is touched then.
//!    On a log written before playback permissions were explicit it runs
//!    the one-time migration that keeps what every auditor sees (see
//!    `srs_domain::model::migration`), before anything is served.
//! 3. [`Server::run`] serves until the shutdown future completes (SIGINT or
//!    SIGTERM for the binary). Then it stops accepting connections, lets
//!    in-flight requests finish (at most [`DRAIN_TIMEOUT`]), ends the
//!    subscriptions, and flushes the database before returning.
//!
//! # A full disk heals without a restart
//!
//! While storage refuses writes the log answers appends `UNAVAILABLE`,
//! `/readyz` answers 503 with the reason and `srs_log_writable` is 0; reads
//! keep being served. The log writer retries by itself (see
//! `srs_domain::log`'s `writer`). sled, however, keeps the first I/O
//! error of a database handle for good, so once the data directory takes
//! writes again the writer reports `NeedsReopen`. Then [`Server::run`] does
//! in-process what a restart would: it drains like a shutdown (in-flight
//! requests finish, subscriptions end), drops every handle of the database,
//! opens the data directory again (the log recovers from disk: every
//! acknowledged event is there, positions gapless) and serves on the same
//! listening socket, which stays bound throughout (connections made
//! meanwhile wait in its backlog). If the reopen fails (the disk filled up
//! again) it is retried with backoff for [`REOPEN_TIMEOUT`], then `run`
//! returns the error. A reopen less than [`REOPEN_CALM`] after the previous
//! one waits first (1 s, doubling), so a disk that takes the probe but not
//! sled's writes does not make the server churn.
//! After a reopen the request counters of `/metrics` start from zero again
//! (Prometheus reads that as a counter reset).
//! [`Server::open_with_faults`] injects the failures for tests and drills.
//!
//! A shutdown while storage fails still exits cleanly (exit 0): everything
//! acknowledged was durable when it was acknowledged, and the read models'
//! progress that the final flush would add is recomputed from the log on
//! the next start; so the final flush failing is reported as a warning, not
//! an error.
//!
//! # The log on a JetStream cluster
//!
//! [`Server::open_bound_with_log`] with [`JetStreamOptions`] (`srs serve
//! --log-url`) keeps the log in a JetStream stream
//! (`srs_log_jetstream`) instead of the data directory's sled database;
//! the read models and tokens stay in the data directory. Several nodes
//! may serve one stream: each node's log follows the stream, so its
//! projections apply every node's appends (see `srs_log_jetstream`). The
//! recordings' content and keys go to the same cluster (an object store and a KV
//! bucket beside the stream, the keys wrapped under the key of
//! `ServeOptions::cluster_key_file`, required then), so every server of
//! the cluster plays every recording and a deletion through any of them
//! shreds it for all (`srs_log_jetstream`, "Content and keys"). When
//! the cluster loses its quorum the log answers appends `UNAVAILABLE` and
//! resumes by itself once it is back (no reopen: the backend reads back
//! what the stream holds). The data directory is bound to that log: its
//! [`LOG_ID_FILE`] names the stream and its creation time, and a start
//! with another log (another stream, the stream deleted and created again,
//! or a data directory holding an embedded log) is refused with
//! [`ServeError::LogMismatch`], since its read models were built from
//! another history.
//!
//! Several nodes may serve one stream. The scheduled jobs that append
//! facts (retention, the liveness check) run only on the node holding
//! the job's lease, the first ADMIN token is created once per log
//! (`bootstrap_admin`), and `/readyz` and `/metrics` tell how far the
//! node's read models are behind the stream: see [`crate::cluster`].
//!
//! # Files
//!
//! A data directory srs creates is made mode 0700 (so are the content
//! directories), and sled's files, the key files and `admin.token` are
//! 0600: other local users read nothing of the log or the content.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use srs_domain::app::{AppError, Service, ServiceConfig};
use srs_domain::log::{
    EventLog, EventStore, Faults, LogError, SledEventStore, StorageError, StoreOptions, Writability,
};
use srs_domain::model::{DomainEvent, ServerStatus};
use srs_domain::time::{Clock, SystemClock};
use srs_log_jetstream::{JetStreamBackend, JetStreamOptions};
use srs_projections::models::tokens::TokensProjection;
use srs_projections::store::{Db, Store};
use srs_projections::{ProjectionError, ReadModels, SetOptions, WaitError, Which};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::background::Background;
use crate::cluster::{while_held, Cluster, Job};
use crate::content::{ContentEffects, ContentStore};
use crate::http::app_with;
use crate::last_used::{LastUsed, FLUSH_EVERY, LAST_HEARTBEAT_TREE, LAST_USED_TREE};
use crate::metrics::Metrics;
use crate::state::{HttpState, Limits, ReadModelPermissions, Services};

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Reopens within this time of the previous one wait before draining: 1 s,
/// doubling up to this.
pub const REOPEN_CALM: Duration = Duration::from_secs(60);

/// How long reopening the data directory after a storage failure is
/// retried before [`Server::run`] gives up with the error.
pub const REOPEN_TIMEOUT: Duration = Duration::from_secs(300);

/// The file in the data directory holding the first admin's secret.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The tree where the content effects kept their checkpoint before they
/// ran as a reactor of the engine (read once, to carry it over).
pub const CONTENT_TREE: &str = "content";

/// sled's page cache of `srs serve` by default, in MiB (`--cache-mb`).
///
/// sled counts its cache in the bytes its pages take on disk; held in
/// memory they take about 3 times that (64 MiB held ~210 MiB resident at
/// 1M recordings, 32 MiB ~95 MiB). Every read model answers from its own
/// in-memory index or row cache first, so a larger cache buys little: at
/// 1M recordings 32 MiB answered the bench's reads and ingest as fast as
/// 64 did (README, "Memory at 1M recordings").
pub const DEFAULT_CACHE_MB: u64 = 32;

/// What `srs serve` needs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub data: PathBuf,
    pub listen: String,
    pub limits: Limits,
    /// Browser origins allowed to call `/graphql` and the content routes
    /// (CORS), e.g. `https://dashboard.example`; empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// The cluster key file (32 random bytes, the same on every server of
    /// the cluster) that wraps the recordings' keys kept in the cluster:
    /// required with a JetStream log, unused without.
    pub cluster_key_file: Option<PathBuf>,
    /// sled's page cache, in MiB ([`DEFAULT_CACHE_MB`] unless told).
    pub cache_mb: u64,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another process (another `srs serve`) holds the data directory.
    #[error("the data directory {} is in use by another process (is another `srs serve` running on it?)", .0.display())]
    Locked(PathBuf),
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("the event log: {0}")]
    Log(#[from] LogError),
    /// The data directory's read models were built from another log than
    /// the one `--log-url` names.
    #[error("{0}")]
    LogMismatch(String),
    #[error("the read models: {0}")]
    Projection(#[from] ProjectionError),
    #[error("creating the first admin token: {0}")]
    Bootstrap(String),
    #[error("migrating the log to explicit playback permissions: {0}")]
    Migration(String),
    #[error("serving HTTP: {0}")]
    Http(std::io::Error),
    #[error("the content store: {0}")]
    Content(String),
    /// A start that its options make impossible (a JetStream log without
    /// a usable cluster key file): nothing was served, fix the options.
    #[error("{0}")]
    Config(String),
    #[error("starting the background runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<AppError> for ServeError {
    fn from(value: AppError) -> Self {
        ServeError::Bootstrap(value.to_string())
    }
}

/// How often a start that waits for the tokens read model says how far it is.
const BOOTSTRAP_PROGRESS: Duration = Duration::from_secs(10);

/// How long creating the first admin retries while the log is unavailable.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(60);

/// How often connected servers are checked for missed heartbeats.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(30);

/// A server whose data directory is open and whose socket is bound.
pub struct Server {
    options: ServeOptions,
    /// Where the log is: `None` for the data directory's sled database.
    log: Option<JetStreamOptions>,
    clock: Arc<dyn Clock>,
    faults: Option<Arc<Faults>>,
    bootstrap: Option<String>,
    listener: TcpListener,
    state: HttpState,
    shutdown: watch::Sender<bool>,
}

/// Why one round of serving ended.
enum Ended {
    /// The shutdown signal: stop for good.
    Signal,
    /// The database handle is spoiled by a storage failure: open it again.
    Reopen,
}

impl Server {
    /// Opens `options.data` and binds `options.listen`.
    pub async fn open(options: ServeOptions) -> Result<Server, ServeError> {
        Self::open_with_clock(options, Arc::new(SystemClock)).await
    }

    /// [`Server::open`] with the clock every use case and the retention
    /// scheduler read (tests pass a manual one).
    pub async fn open_with_clock(
        options: ServeOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Server, ServeError> {
        Self::open_with(options, clock, None).await
    }

    /// [`Server::open`] with storage faults injected into the log writer,
    /// also after an in-process reopen (tests and drills of a full disk).
    pub async fn open_with_faults(
        options: ServeOptions,
        faults: Arc<Faults>,
    ) -> Result<Server, ServeError> {
        Self::open_with(options, Arc::new(SystemClock), Some(faults)).await
    }

    async fn open_with(
        options: ServeOptions,
        clock: Arc<dyn Clock>,
        faults: Option<Arc<Faults>>,
    ) -> Result<Server, ServeError> {
        // The port first: a start that cannot listen creates nothing (no
        // data directory, no admin token).
        let listener = Self::bind(&options.listen).await?;
        Self::open_bound(options, clock, faults, listener).await
    }

    /// Binds `listen`: the first step of a start, before anything is
    /// created (`srs serve --demo` prepares its directory in between).
    pub async fn bind(listen: &str) -> Result<TcpListener, ServeError> {
        TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: listen.to_owned(),
                source,
            })
    }

    /// Opens `options.data` and serves on `listener` (from [`Server::bind`]).
    pub async fn open_bound(
        options: ServeOptions,
        clock: Arc<dyn Clock>,
        faults: Option<Arc<Faults>>,
        listener: TcpListener,
    ) -> Result<Server, ServeError> {
        Self::open_bound_with_log(options, None, clock, faults, listener).await
    }

    /// [`Server::open_bound`] with the log in a JetStream stream when
    /// `log` is given (see the module docs), in the data directory's sled
    /// database otherwise.
    pub async fn open_bound_with_log(
        options: ServeOptions,
        log: Option<JetStreamOptions>,
        clock: Arc<dyn Clock>,
        faults: Option<Arc<Faults>>,
        listener: TcpListener,
    ) -> Result<Server, ServeError> {
        // A start that cannot open the cluster's content creates nothing.
        if log.is_some() {
            cluster_key(&options)?;
        }
        srs_domain::log::create_private_dir(&options.data).map_err(|source| {
            ServeError::DataDir {
                path: options.data.clone(),
                source,
            }
        })?;
        let db = open_data_db(&options)?;
        Self::start(options, log, clock, faults, db, listener).await
    }

    /// Starts on an opened database and a bound listener.
    async fn start(
        options: ServeOptions,
        log: Option<JetStreamOptions>,
        clock: Arc<dyn Clock>,
        faults: Option<Arc<Faults>>,
        db: Db,
        listener: TcpListener,
    ) -> Result<Server, ServeError> {
        let store: EventLog<DomainEvent> = match &log {
            None => {
                let store_options = StoreOptions {
                    probe_dir: Some(options.data.clone()),
                    faults: faults.clone(),
                    ..StoreOptions::default()
                };
                SledEventStore::with_db(db.sled().clone(), store_options)?.into_log()
            }
            Some(jetstream) => {
                let jetstream = jetstream.clone();
                // Connecting and reading the stream back blocks.
                let backend =
                    tokio::task::spawn_blocking(move || JetStreamBackend::open(&jetstream))
                        .await
                        .map_err(|e| LogError::Storage(StorageError::Other(e.to_string())))??;
                let store_options = StoreOptions {
                    faults: faults.clone(),
                    ..StoreOptions::default()
                };
                bind_to_log(&options.data, &db, backend.identity())?;
                EventLog::new(Arc::new(backend), store_options)?
            }
        };
        let shared: Arc<dyn EventStore<DomainEvent>> = Arc::new(store.clone());
        // On a cluster, one key file: the recordings' keys are wrapped
        // under it and playback tickets sealed under a key derived from it.
        let cluster_key = log.as_ref().map(|_| cluster_key(&options)).transpose()?;
        let tickets = match &cluster_key {
            Some(key) => crate::content::Tickets::with_key(&key.derive(TICKET_KEY_PURPOSE)),
            None => crate::content::Tickets::new(),
        };
        // One key ring for the data directory: the content store seals
        // chunks and the service seals session events under the same
        // recording keys, and a shredding evicts the one cache.
        let content = Arc::new(open_content(&options, log.as_ref(), cluster_key).await?);
        ContentEffects::carry_over_checkpoint(
            &db,
            &db.open(CONTENT_TREE).map_err(ProjectionError::from)?,
        )?;
        // The projections and reactors run at background priority.
        let background = Background::start().map_err(ServeError::Runtime)?;
        let reads = {
            let _on_background = background.handle().enter();
            ReadModels::start_with_reactors(
                shared.clone(),
                &db,
                vec![ContentEffects::reactor(content.clone())],
                SetOptions::default(),
            )?
        };
        let permissions = Arc::new(ReadModelPermissions {
            reads: reads.clone(),
            store: store.clone(),
        });
        let config = ServiceConfig {
            denial_facts_per_minute: options.limits.denial_facts_per_minute,
            liveness_period_secs: options.limits.liveness_period.as_secs().max(1) as i64,
            ..ServiceConfig::default()
        };
        let service = Arc::new(
            Service::with_config(shared.clone(), clock.clone(), permissions, config)
                .with_keys(content.keys().clone()),
        );
        migrate(&service).await?;
        let bootstrap = bootstrap_admin(&options.data, &store, &reads, &service).await?;
        let cluster = match &log {
            None => None,
            Some(jetstream) => {
                // Unique per start (in containers every node may be pid 1
                // on the same address); only shown, never compared.
                let holder = format!(
                    "srs {} pid {} on {}",
                    &uuid::Uuid::new_v4().simple().to_string()[..8],
                    std::process::id(),
                    listener
                        .local_addr()
                        .map_or_else(|_| "?".to_owned(), |a| a.to_string())
                );
                let cluster = Cluster::join(jetstream, &holder, options.limits.lease_ttl)
                    .await
                    .map_err(|reason| ServeError::Log(LogError::Unavailable { reason }))?;
                Some(Arc::new(cluster))
            }
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let content_effects = ContentEffects::new(reads.clone());
        let services = Arc::new(Services {
            store,
            service,
            reads,
            metrics: Metrics::new(),
            limits: options.limits.clone(),
            shutdown: shutdown_rx,
            content,
            content_effects,
            last_used: LastUsed::new(db.open(LAST_USED_TREE).map_err(ProjectionError::from)?),
            heartbeats: LastUsed::new(
                db.open(LAST_HEARTBEAT_TREE)
                    .map_err(ProjectionError::from)?,
            ),
            data_dir: options.data.clone(),
            cors_origins: options.cors_origins.clone(),
            tickets,
            cluster,
            background,
        });
        Ok(Server {
            options,
            log,
            clock,
            faults,
            bootstrap,
            listener,
            state: HttpState::new(services),
            shutdown,
        })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        self.listener.local_addr().map_err(ServeError::Http)
    }

    /// The first admin's secret, when this start created it (print it once).
    pub fn bootstrap_secret(&self) -> Option<&str> {
        self.bootstrap.as_deref()
    }

    /// Where the first admin's secret is kept (mode 0600).
    pub fn admin_token_path(&self) -> PathBuf {
        self.options.data.join(ADMIN_TOKEN_FILE)
    }

    /// The shared state (for tests that drive the app directly).
    pub fn state(&self) -> &HttpState {
        &self.state
    }

    /// Serves until `signal` completes, then drains and flushes.
    pub async fn run(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.run_with(axum::Router::new(), signal).await
    }

    /// [`Server::run`] with `extra` routes mounted next to the API (see
    /// [`crate::http::app_with`]). Reopens the data directory in-process
    /// when a storage failure spoiled the database handle (module docs).
    pub async fn run_with(
        self,
        extra: axum::Router<HttpState>,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let (stop_tx, stop) = watch::channel(false);
        let signal = tokio::spawn(async move {
            signal.await;
            let _ = stop_tx.send(true);
        });
        let mut server = self;
        // Reopens close together (a disk that takes the probe but not
        // sled's writes) wait longer and longer before the next.
        let mut last_reopen: Option<Instant> = None;
        let mut delay = Duration::ZERO;
        let result = loop {
            let (options, clock) = (server.options.clone(), server.clock.clone());
            let log = server.log.clone();
            let faults = server.faults.clone();
            let spare = match server.serve_once(extra.clone(), stop.clone(), delay).await {
                Ok((Ended::Signal, _)) => break Ok(()),
                Ok((Ended::Reopen, spare)) => spare,
                Err(e) => break Err(e),
            };
            delay = match last_reopen {
                Some(at) if at.elapsed() < REOPEN_CALM => {
                    (delay * 2).clamp(Duration::from_secs(1), REOPEN_CALM)
                }
                _ => Duration::ZERO,
            };
            last_reopen = Some(Instant::now());
            match reopen(options, log, clock, faults, spare, stop.clone()).await {
                Ok(Some(next)) => server = next,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        signal.abort();
        result
    }

    /// Serves until the stop signal or until the database must be reopened,
    /// then drains and flushes. Hands back a second descriptor of the
    /// listening socket, which keeps it bound while the database is reopened.
    async fn serve_once(
        self,
        extra: axum::Router<HttpState>,
        mut stop: watch::Receiver<bool>,
        reopen_delay: Duration,
    ) -> Result<(Ended, std::net::TcpListener), ServeError> {
        let Server {
            listener,
            state,
            shutdown,
            ..
        } = self;
        let listener = listener.into_std().map_err(ServeError::Http)?;
        let spare = listener.try_clone().map_err(ServeError::Http)?;
        let listener = TcpListener::from_std(listener).map_err(ServeError::Http)?;
        let services = state.services().clone();
        let liveness = tokio::spawn(watch_liveness(services.clone(), services.shutdown.clone()));
        // Retention runs are background work (see `crate::background`).
        let retention = services
            .background
            .handle()
            .spawn(crate::retention::schedule(
                services.clone(),
                services.shutdown.clone(),
            ));
        let last_used = tokio::spawn(flush_last_used(services.clone(), services.shutdown.clone()));
        let reopen = Arc::new(AtomicBool::new(false));
        let mut health = services.store.watch_writability();
        let (begin_tx, mut begin_rx) = watch::channel(false);
        let graceful = {
            let reopen = reopen.clone();
            async move {
                let spoiled = async {
                    let needs_reopen =
                        |w: &Writability| matches!(w, Writability::NeedsReopen { .. });
                    if health.wait_for(needs_reopen).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(reopen_delay).await;
                };
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => {
                        tracing::info!("shutting down: no new connections, draining in-flight requests");
                    }
                    () = spoiled => {
                        reopen.store(true, Ordering::SeqCst);
                        tracing::warn!("storage takes writes again but the database handle does not: draining, then reopening the data directory");
                    }
                }
                let _ = begin_tx.send(true);
            }
        };
        // The peer address reaches the handlers (rate limits per client address).
        let app =
            app_with(state, extra).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(graceful);
        let drained = tokio::select! {
            result = std::future::IntoFuture::into_future(serve) => result.map_err(ServeError::Http),
            () = async {
                // Wait for the signal, then give in-flight requests their time.
                let _ = begin_rx.wait_for(|begun| *begun).await;
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } => {
                tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}; stopping anyway");
                Ok(())
            }
        };
        // Subscriptions (upgraded connections) are not drained by hyper: tell them.
        let _ = shutdown.send(true);
        liveness.abort();
        retention.abort();
        last_used.abort();
        let _ = liveness.await;
        let _ = retention.await;
        let _ = last_used.await;
        // Another node takes the jobs at its next try, not after the TTL.
        if let Some(cluster) = &services.cluster {
            cluster.leave().await;
        }
        // The last minutes of token use, before the database is flushed.
        if let Err(e) = services.last_used.flush() {
            tracing::warn!(error = %e, "could not keep when tokens were last used");
        }
        if let Err(e) = services.heartbeats.flush() {
            tracing::warn!(error = %e, "could not keep when servers last heartbeated");
        }
        services.reads.set().shutdown().await;
        match services.store.flush() {
            Ok(()) => tracing::info!("stopped; the data directory is flushed"),
            // Every acknowledged event was flushed before it was
            // acknowledged; what this flush would add (read models'
            // progress) is recomputed from the log on the next start.
            Err(e) => tracing::warn!(
                error = %e,
                "stopped; the final flush failed (storage fails): everything acknowledged was durable already"
            ),
        }
        drained?;
        let ended = if reopen.load(Ordering::SeqCst) {
            Ended::Reopen
        } else {
            Ended::Signal
        };
        Ok((ended, spare))
    }
}

/// Opens the data directory's database again on the kept socket, retrying
/// while the old handles are still being released or storage still fails.
/// `None` when the stop signal came meanwhile.
async fn reopen(
    options: ServeOptions,
    log: Option<JetStreamOptions>,
    clock: Arc<dyn Clock>,
    faults: Option<Arc<Faults>>,
    spare: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<Server>, ServeError> {
    let started = Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        if *stop.borrow() {
            return Ok(None);
        }
        let attempt = async {
            let db = open_data_db(&options)?;
            let listener = spare
                .try_clone()
                .and_then(TcpListener::from_std)
                .map_err(ServeError::Http)?;
            Server::start(
                options.clone(),
                log.clone(),
                clock.clone(),
                faults.clone(),
                db,
                listener,
            )
            .await
        };
        match attempt.await {
            Ok(server) => {
                tracing::info!(
                    head = server.state.services().store.head().position,
                    "the data directory is open again; serving"
                );
                return Ok(Some(server));
            }
            Err(e) if started.elapsed() >= REOPEN_TIMEOUT => return Err(e),
            // The old handles are still being dropped.
            Err(ServeError::Locked(_)) => {
                tracing::debug!("waiting for the old database handles to close")
            }
            Err(e) => tracing::warn!(error = %e, "reopening the data directory failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return Ok(None),
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// The content store: the data directory's files, or with a JetStream log
/// the cluster's object store and key bucket (see the module docs).
async fn open_content(
    options: &ServeOptions,
    log: Option<&JetStreamOptions>,
    key: Option<srs_log_jetstream::ClusterKey>,
) -> Result<ContentStore, ServeError> {
    let content = |e: crate::content::ContentError| ServeError::Content(e.to_string());
    let (Some(log), Some(key)) = (log, key) else {
        return ContentStore::open(&options.data).map_err(content);
    };
    let (data, log) = (options.data.clone(), log.clone());
    // Connecting and creating the buckets block.
    tokio::task::spawn_blocking(move || crate::content::open_cluster_content(&data, &log, key))
        .await
        .map_err(|e| ServeError::Content(e.to_string()))?
        .map_err(content)
}

/// What the cluster's playback-ticket key is derived for (see
/// `ClusterKey::derive`).
const TICKET_KEY_PURPOSE: &[u8] = b"srs playback tickets v1";

/// The cluster key of a start on a JetStream log: a missing, unreadable,
/// too widely readable or malformed key file is [`ServeError::Config`].
fn cluster_key(options: &ServeOptions) -> Result<srs_log_jetstream::ClusterKey, ServeError> {
    let Some(key_file) = options.cluster_key_file.as_deref() else {
        return Err(ServeError::Config(format!(
            "a JetStream log (--log-url) needs --cluster-key-file (SRS_CLUSTER_KEY_FILE), the key that wraps the recordings' keys in the cluster; {}",
            srs_log_jetstream::how_to_create(std::path::Path::new("PATH"))
        )));
    };
    srs_log_jetstream::ClusterKey::load(key_file).map_err(|e| ServeError::Config(e.to_string()))
}

/// The file of a data directory served with `--log-url` that names the
/// log its read models are built from (see the module docs).
pub const LOG_ID_FILE: &str = "log-id";

/// Refuses a data directory built from another log than `identity` (the
/// JetStream backend's), and binds a new one to it.
fn bind_to_log(data: &std::path::Path, db: &Db, identity: &str) -> Result<(), ServeError> {
    use srs_domain::log::{LogBackend as _, LOG_TREE};
    let embedded = db.sled().open_tree(LOG_TREE).map_err(LogError::from)?;
    if embedded.head()?.position > 0 {
        return Err(ServeError::LogMismatch(format!(
            "the data directory {} holds an embedded log; serve a JetStream log from an empty data directory",
            data.display()
        )));
    }
    let path = data.join(LOG_ID_FILE);
    let data_dir = |source| ServeError::DataDir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == identity => Ok(()),
        Ok(found) => Err(ServeError::LogMismatch(format!(
            "the data directory {} was built from the log `{}`, not `{identity}` (another stream, or the stream was created again): serve this log from an empty data directory",
            data.display(),
            found.trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let partial = data.join(format!("{LOG_ID_FILE}.partial"));
            std::fs::write(&partial, format!("{identity}\n")).map_err(data_dir)?;
            std::fs::rename(&partial, &path).map_err(data_dir)
        }
        Err(e) => Err(data_dir(e)),
    }
}

/// Opens the data directory's database, shared by the log and the read
/// models (a held directory is [`ServeError::Locked`]).
fn open_data_db(options: &ServeOptions) -> Result<Db, ServeError> {
    srs_domain::log::open_db(&options.data, options.cache_mb.saturating_mul(1 << 20))
        .map(Db::new)
        .map_err(|e| match e {
            LogError::Locked { path } => ServeError::Locked(path),
            other => ServeError::Log(other),
        })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Runs the log's one-time migrations before anything is served (see
/// `srs_domain::model::migration`): on a log written when an AUDITOR
/// without playback permissions saw its whole sites, every such auditor
/// gets a whole-site permission per site, so nobody gains or loses access.
///
/// Another node starting on the same JetStream log may migrate at the same
/// time: the migration's marker is appended once (a conflict is "done
/// already"), and an append refused because this node's view of the log
/// was behind (the log unavailable while it reads the stream back) is
/// tried again on what is stored.
async fn migrate(service: &Service) -> Result<(), ServeError> {
    let mut retry_until = None;
    let migrated = loop {
        match service.migrate_to_explicit_grants().await {
            Ok(migrated) => break migrated,
            Err(AppError::Log(e)) if e.is_unavailable() => {
                let until = *retry_until.get_or_insert_with(|| Instant::now() + BOOTSTRAP_RETRY);
                if Instant::now() >= until {
                    return Err(ServeError::Migration(e.to_string()));
                }
                tracing::warn!(error = %e, "migrating: the log is unavailable; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(ServeError::Migration(e.to_string())),
        }
    };
    match migrated {
        Some(done) if done.granted > 0 => tracing::info!(
            granted = done.granted,
            position = done.position,
            "explicit playback permissions: granted whole sites to the auditors that saw them"
        ),
        Some(_) | None => {}
    }
    Ok(())
}

/// On a first start (no ADMIN token in the log that authenticates: none
/// issued, or every one revoked or expired) issues one, writes its secret
/// to `<data>/admin.token` (mode 0600) and returns it so the caller prints
/// it once. So an operator who lost every ADMIN token (revoked, expired)
/// gets one back by restarting srs on its data directory, which only who
/// holds the directory can do.
///
/// Once per log, also when several nodes start at once on one JetStream
/// log: the token's append is conditional in the log itself. Each
/// bootstrap round has a token of its own fixed id
/// ([`srs_domain::app::bootstrap_token_id`]), appended only if its stream
/// does not exist yet. The round is read before the check for an admin,
/// so of two starts that both found none, exactly one appends; the other's
/// append is a conflict, and it checks again and finds the admin. Only
/// the node that issued the token writes `admin.token`; the others log
/// which token it was.
async fn bootstrap_admin(
    data: &std::path::Path,
    store: &EventLog<DomainEvent>,
    reads: &ReadModels,
    service: &Service,
) -> Result<Option<String>, ServeError> {
    let path = data.join(ADMIN_TOKEN_FILE);
    let mut retry_until = None;
    loop {
        // The round before the check: a round's token issued after this
        // read by another node makes this node's append a conflict.
        let round = service.bootstrap_round().await?;
        tokens_caught_up(store, reads).await?;
        if reads.tokens()?.has_admin(service.now())? {
            if let Some(last) = round.checked_sub(1).filter(|_| !path.exists()) {
                tracing::info!(
                    token_id = %srs_domain::app::bootstrap_token_id(last),
                    "the log has an ADMIN token; the first one was created by another start or srs node on this log, and its secret is in that node's data directory ({ADMIN_TOKEN_FILE})"
                );
            }
            return Ok(None);
        }
        match service.issue_bootstrap_token("admin", round).await {
            Ok(issued) => {
                write_secret(&path, &issued.secret)
                    .map_err(|e| ServeError::Bootstrap(format!("{}: {e}", path.display())))?;
                tracing::info!(token_id = %issued.token_id, path = %path.display(), "created the first ADMIN token");
                return Ok(Some(issued.secret));
            }
            Err(AppError::Conflict(_)) => tracing::info!(
                token_id = %srs_domain::app::bootstrap_token_id(round),
                "another srs node on this log created the first ADMIN token at the same time; checking again"
            ),
            // A node whose view of a shared log was behind has its append
            // refused and reads the log back: check again on what is there.
            Err(AppError::Log(e)) if e.is_unavailable() => {
                let until = *retry_until.get_or_insert_with(|| Instant::now() + BOOTSTRAP_RETRY);
                if Instant::now() >= until {
                    return Err(ServeError::Bootstrap(e.to_string()));
                }
                tracing::warn!(error = %e, "creating the first ADMIN token: the log is unavailable; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until the tokens read model has caught up with the log's head.
async fn tokens_caught_up(
    store: &EventLog<DomainEvent>,
    reads: &ReadModels,
) -> Result<(), ServeError> {
    // Whether an admin exists is the tokens read model's answer once it has
    // caught up with the log. On a large log (an import, a long history
    // with projections rebuilding) that takes as long as it takes: wait,
    // saying how far it is, and fail only if the projection has failed.
    let head = store.head().position;
    loop {
        match reads
            .wait_for(
                Which::Only(&[TokensProjection::NAME]),
                head,
                BOOTSTRAP_PROGRESS,
            )
            .await
        {
            Ok(()) => return Ok(()),
            Err(WaitError::Timeout { at, wanted, .. }) => tracing::info!(
                position = at,
                head = wanted,
                "catching up with the log before checking for an admin"
            ),
            Err(e) => return Err(ServeError::Bootstrap(e.to_string())),
        }
    }
}

/// Writes when tokens were last used, and when servers last heartbeated,
/// every [`FLUSH_EVERY`] (see [`crate::last_used`]).
async fn flush_last_used(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let flushing = services.clone();
        match tokio::task::spawn_blocking(move || {
            (flushing.last_used.flush(), flushing.heartbeats.flush())
        })
        .await
        {
            Ok((used, beats)) => {
                if let Err(e) = used {
                    tracing::warn!(error = %e, "could not keep when tokens were last used");
                }
                if let Err(e) = beats {
                    tracing::warn!(error = %e, "could not keep when servers last heartbeated");
                }
            }
            Err(e) => tracing::warn!(error = %e, "the last-used flush failed"),
        }
    }
}

/// After a rotation of the token whose secret has SHA-256 `old_sha256`:
/// when `<data>/admin.token` holds that secret (the first ADMIN token,
/// rotated), puts `new_secret` there instead, so the documented
/// `cat <data>/admin.token` keeps working. Written beside and renamed
/// over (mode 0600): the file holds the old or the new secret, never a
/// part. Returns whether the file was replaced.
pub fn replace_admin_token_file(
    data: &std::path::Path,
    old_sha256: &str,
    new_secret: &str,
) -> std::io::Result<bool> {
    let path = data.join(ADMIN_TOKEN_FILE);
    let held = match std::fs::read_to_string(&path) {
        Ok(held) => held,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if old_sha256.is_empty() || !srs_domain::model::verify_secret(held.trim(), old_sha256) {
        return Ok(false);
    }
    let temporary = data.join(format!("{ADMIN_TOKEN_FILE}.new"));
    write_secret(&temporary, new_secret)?;
    std::fs::rename(&temporary, &path)?;
    if let Ok(dir) = std::fs::File::open(data) {
        let _ = dir.sync_all();
    }
    Ok(true)
}

/// Writes `secret` to `path`, readable by the owner only.
pub fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // An older file keeps its mode on open: set it explicitly.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(file, "{secret}")?;
        file.sync_all()
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path)?;
        writeln!(file, "{secret}")?;
        file.sync_all()
    }
}

/// How often connected servers are checked for missed heartbeats: a third
/// of the liveness period, at most [`LIVENESS_INTERVAL`], at least 1 s.
pub fn liveness_interval(period: Duration) -> Duration {
    (period / 3).clamp(Duration::from_secs(1), LIVENESS_INTERVAL)
}

/// Marks connected servers offline when their heartbeats stop; with a
/// JetStream log only while this node holds the `liveness` lease (see
/// [`crate::cluster`]).
async fn watch_liveness(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(liveness_interval(services.limits.liveness_period));
    let lease = services
        .cluster
        .as_ref()
        .map(|c| c.lease(Job::Liveness).watch());
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        // Every node shares the heartbeats it took and takes the others':
        // `Server.lastHeartbeat` on any node, and the lease holder's check,
        // go by the newest heartbeat any node took.
        if let Some(cluster) = &services.cluster {
            cluster.share_heartbeats(&services.service).await;
            cluster.take_heartbeats(&services.service).await;
        }
        if let Some(Err(e)) = while_held(lease.clone(), check_liveness(&services)).await {
            tracing::warn!(error = %e, "liveness check failed");
        }
    }
}

/// One liveness check over the connected servers.
async fn check_liveness(services: &Services) -> Result<(), String> {
    let servers = services
        .reads
        .servers()
        .and_then(|servers| servers.servers(None))
        .map_err(|e| format!("cannot list servers: {e}"))?;
    let ids: Vec<_> = servers
        .iter()
        .filter(|s| s.status == ServerStatus::Connected)
        .map(|s| s.id)
        .collect();
    services
        .service
        .check_liveness(&ids)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use srs_domain::model::hash_secret;

    /// One node of a cluster: its own data directory and read models, a
    /// service over the shared log.
    fn node(dir: &std::path::Path, log: &EventLog<DomainEvent>) -> (ReadModels, Service) {
        let db = open_data_db(&ServeOptions {
            data: dir.to_owned(),
            listen: String::new(),
            limits: crate::state::Limits::default(),
            cors_origins: Vec::new(),
            cluster_key_file: None,
            cache_mb: DEFAULT_CACHE_MB,
        })
        .unwrap();
        let shared: Arc<dyn EventStore<DomainEvent>> = Arc::new(log.clone());
        let reads = ReadModels::start(shared.clone(), &db, SetOptions::default()).unwrap();
        let permissions = Arc::new(ReadModelPermissions {
            reads: reads.clone(),
            store: log.clone(),
        });
        let service = Service::new(shared, Arc::new(SystemClock), permissions);
        (reads, service)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_bootstrapping_one_log_at_once_create_one_admin() {
        let dir = tempfile::tempdir().unwrap();
        let log = SledEventStore::open(&dir.path().join("log"), StoreOptions::default())
            .unwrap()
            .into_log();
        let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
        let (a_reads, a_service) = node(&a_dir, &log);
        let (b_reads, b_service) = node(&b_dir, &log);
        let (a, b) = tokio::join!(
            bootstrap_admin(&a_dir, &log, &a_reads, &a_service),
            bootstrap_admin(&b_dir, &log, &b_reads, &b_service),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let (secret, creator, other) = match (a, b) {
            (Some(secret), None) => (secret, &a_dir, &b_dir),
            (None, Some(secret)) => (secret, &b_dir, &a_dir),
            (a, b) => panic!(
                "exactly one node creates the admin: {:?} {:?}",
                a.is_some(),
                b.is_some()
            ),
        };
        // Only the creator holds the secret; both nodes' read models know
        // the one admin.
        let held = std::fs::read_to_string(creator.join(ADMIN_TOKEN_FILE)).unwrap();
        assert_eq!(held.trim(), secret);
        assert!(!other.join(ADMIN_TOKEN_FILE).exists());
        let issued: Vec<_> = log
            .read_all(1, 1_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e.payload, DomainEvent::TokenIssued { .. }))
            .collect();
        assert_eq!(issued.len(), 1, "one token in the log");
        for reads in [&a_reads, &b_reads] {
            let head = log.head().position;
            reads
                .wait_for(Which::All, head, Duration::from_secs(30))
                .await
                .unwrap();
            let tokens = reads.tokens().unwrap();
            assert!(tokens
                .has_admin(srs_domain::time::SystemClock.now())
                .unwrap());
            assert!(tokens
                .authenticate(&hash_secret(&secret))
                .unwrap()
                .is_some());
        }

        // A restart finds the admin and issues nothing.
        assert!(bootstrap_admin(&a_dir, &log, &a_reads, &a_service)
            .await
            .unwrap()
            .is_none());

        // The admin revokes itself: the next start issues the next
        // round's token, once.
        let row = a_reads
            .tokens()
            .unwrap()
            .authenticate(&hash_secret(&secret))
            .unwrap()
            .unwrap();
        let principal = row.principal().unwrap();
        a_service.revoke_token(&principal, row.id).await.unwrap();
        let again = bootstrap_admin(&b_dir, &log, &b_reads, &b_service)
            .await
            .unwrap()
            .expect("a new admin after the last was revoked");
        assert_ne!(again, secret);
        assert_eq!(
            std::fs::read_to_string(b_dir.join(ADMIN_TOKEN_FILE))
                .unwrap()
                .trim(),
            again
        );
        assert_eq!(b_service.bootstrap_round().await.unwrap(), 2);
        a_reads.set().shutdown().await;
        b_reads.set().shutdown().await;
    }

    #[test]
    fn admin_token_file_takes_the_new_secret_only_when_it_held_the_rotated_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        assert!(!replace_admin_token_file(dir.path(), &hash_secret("old"), "new").unwrap());
        write_secret(&path, "other").unwrap();
        assert!(!replace_admin_token_file(dir.path(), &hash_secret("old"), "new").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), "other");
        write_secret(&path, "old").unwrap();
        assert!(replace_admin_token_file(dir.path(), &hash_secret("old"), "new").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), "new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join(format!("{ADMIN_TOKEN_FILE}.new")).exists());
    }
}
