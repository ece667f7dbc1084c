//! `srs serve`: open the data directory, start the read models, serve HTTP,
//! shut down cleanly.
//!
//! # Lifecycle
//!
//! 1. [`Server::open`] opens the sled database in the data directory. A
//!    directory held by another process is [`ServeError::Locked`] (exit
//!    code 2 from the binary); nothing is touched then.
//! 2. It binds the listener (`127.0.0.1:0` picks a free port; the bound
//!    address is printed as `srs: listening on http://<addr>`).
//! 3. [`Server::run`] serves until the shutdown future completes (SIGINT or
//!    SIGTERM for the binary). Then it stops accepting connections, lets
//!    in-flight requests finish (at most [`DRAIN_TIMEOUT`]), ends the
//!    subscriptions, and flushes the database before returning.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use srs_domain::app::{AppError, Service, ServiceConfig};
use srs_domain::log::{EventStore, LogError, SledEventStore, StoreOptions};
use srs_domain::model::{DomainEvent, ServerStatus};
use srs_domain::time::{Clock, SystemClock};
use srs_projections::models::tokens::TokensProjection;
use srs_projections::{ProjectionError, ReadModels, SetOptions, WaitError, Which};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::content::{ContentEffects, ContentStore};
use crate::dashboards::Dashboards;
use crate::http::app_with;
use crate::metrics::Metrics;
use crate::state::{AppState, Core, Limits, ReadModelPermissions};

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The file in the data directory holding the first admin's secret.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The sled tree of the content store's own state (its checkpoint).
pub const CONTENT_TREE: &str = "content";

/// sled's page cache for `srs serve`.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// What `srs serve` needs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub data: PathBuf,
    pub listen: String,
    pub limits: Limits,
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
    #[error("the read models: {0}")]
    Projection(#[from] ProjectionError),
    #[error("creating the first admin token: {0}")]
    Bootstrap(String),
    #[error("serving HTTP: {0}")]
    Http(std::io::Error),
    #[error("the content store: {0}")]
    Content(String),
}

impl From<AppError> for ServeError {
    fn from(value: AppError) -> Self {
        ServeError::Bootstrap(value.to_string())
    }
}

/// How often a start that waits for the tokens read model says how far it is.
const BOOTSTRAP_PROGRESS: Duration = Duration::from_secs(10);

/// How often connected servers are checked for missed heartbeats.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(30);

/// A server whose data directory is open and whose socket is bound.
pub struct Server {
    data: PathBuf,
    bootstrap: Option<String>,
    listener: TcpListener,
    state: AppState,
    shutdown: watch::Sender<bool>,
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
        std::fs::create_dir_all(&options.data).map_err(|source| ServeError::DataDir {
            path: options.data.clone(),
            source,
        })?;
        let db = srs_domain::log::open_db(&options.data, CACHE_BYTES).map_err(|e| match e {
            LogError::Locked { path } => ServeError::Locked(path),
            other => ServeError::Log(other),
        })?;
        let store: SledEventStore<DomainEvent> =
            SledEventStore::with_db(db.clone(), StoreOptions::default())?;
        let shared: Arc<dyn EventStore<DomainEvent>> = Arc::new(store.clone());
        let reads = ReadModels::start(shared.clone(), &db, SetOptions::default())?;
        let permissions = Arc::new(ReadModelPermissions {
            reads: reads.clone(),
            store: store.clone(),
        });
        let config = ServiceConfig {
            denial_facts_per_minute: options.limits.denial_facts_per_minute,
            ..ServiceConfig::default()
        };
        let service = Arc::new(Service::with_config(
            shared.clone(),
            clock,
            permissions,
            config,
        ));
        let bootstrap = bootstrap_admin(&options.data, &store, &reads, &service).await?;
        let listener =
            TcpListener::bind(&options.listen)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: options.listen.clone(),
                    source,
                })?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let content = Arc::new(
            ContentStore::open(&options.data).map_err(|e| ServeError::Content(e.to_string()))?,
        );
        let content_effects = ContentEffects::start(
            shared,
            content.clone(),
            db.open_tree(CONTENT_TREE).map_err(LogError::from)?,
            shutdown_rx.clone(),
        )
        .map_err(LogError::from)?;
        let core = Arc::new(Core {
            store,
            service,
            reads,
            metrics: Metrics::new(),
            limits: options.limits,
            shutdown: shutdown_rx,
            content,
            content_effects,
            dashboards: Dashboards::new(),
        });
        Ok(Server {
            data: options.data,
            bootstrap,
            listener,
            state: AppState::new(core),
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
        self.data.join(ADMIN_TOKEN_FILE)
    }

    /// The shared state (for tests that drive the app directly).
    pub fn state(&self) -> &AppState {
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
    /// [`crate::http::app_with`]).
    pub async fn run_with(
        self,
        extra: axum::Router<AppState>,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            listener,
            state,
            shutdown,
            ..
        } = self;
        let core = state.core().clone();
        let liveness = tokio::spawn(watch_liveness(core.clone(), core.shutdown.clone()));
        let retention = tokio::spawn(crate::retention::schedule(
            core.clone(),
            core.shutdown.clone(),
        ));
        let (begin_tx, mut begin_rx) = watch::channel(false);
        let graceful = async move {
            signal.await;
            tracing::info!("shutting down: no new connections, draining in-flight requests");
            let _ = begin_tx.send(true);
        };
        let serve = axum::serve(listener, app_with(state, extra)).with_graceful_shutdown(graceful);
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
        core.reads.set().shutdown().await;
        core.store.flush()?;
        tracing::info!("stopped; the data directory is flushed");
        drained
    }
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

/// On a first start (no unrevoked ADMIN token in the log) issues one,
/// writes its secret to `<data>/admin.token` (mode 0600) and returns it so
/// the caller prints it once.
async fn bootstrap_admin(
    data: &std::path::Path,
    store: &SledEventStore<DomainEvent>,
    reads: &ReadModels,
    service: &Service,
) -> Result<Option<String>, ServeError> {
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
            Ok(()) => break,
            Err(WaitError::Timeout { at, wanted, .. }) => tracing::info!(
                position = at,
                head = wanted,
                "catching up with the log before checking for an admin"
            ),
            Err(e) => return Err(ServeError::Bootstrap(e.to_string())),
        }
    }
    if reads.tokens()?.has_admin()? {
        return Ok(None);
    }
    let issued = service.issue_bootstrap_token("admin").await?;
    let path = data.join(ADMIN_TOKEN_FILE);
    write_secret(&path, &issued.secret)
        .map_err(|e| ServeError::Bootstrap(format!("{}: {e}", path.display())))?;
    tracing::info!(token_id = %issued.token_id, path = %path.display(), "created the first ADMIN token");
    Ok(Some(issued.secret))
}

/// Writes `secret` to `path`, readable by the owner only.
fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
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

/// Marks connected servers offline when their heartbeats stop.
async fn watch_liveness(core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(LIVENESS_INTERVAL);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let servers = match core
            .reads
            .servers()
            .and_then(|servers| servers.servers(None))
        {
            Ok(servers) => servers,
            Err(e) => {
                tracing::warn!(error = %e, "liveness: cannot list servers");
                continue;
            }
        };
        let ids: Vec<_> = servers
            .iter()
            .filter(|s| s.status == ServerStatus::Connected)
            .map(|s| s.id)
            .collect();
        if let Err(e) = core.service.check_liveness(&ids).await {
            tracing::warn!(error = %e, "liveness check failed");
        }
    }
}
