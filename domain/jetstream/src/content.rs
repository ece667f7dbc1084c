//! [`ClusterContent`]: the connection, runtime and buckets that the
//! recordings' content ([`ContentObjects`]) and keys ([`ClusterKeys`])
//! share (see the crate docs, "Content and keys").

use std::fmt;
use std::future::Future;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_nats::jetstream::{kv, object_store, stream::StorageType};
use tokio::runtime::Runtime;

use crate::keys::{ClusterKey, ClusterKeys};
use crate::nats::OPEN_WAIT;
use crate::objects::ContentObjects;
use crate::JetStreamOptions;

/// Why a request to the content or key buckets failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// No answer, no quorum, no connection: a temporary condition; the
    /// request may be made again.
    Unavailable(String),
    /// Something the cluster holds is not what this server can use (a key
    /// wrapped under another cluster key, a bucket configured otherwise).
    Refused(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(why) => {
                write!(f, "the JetStream cluster is unavailable: {why}")
            }
            StoreError::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StoreError {}

pub(crate) fn unavailable(what: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(what.to_string())
}

/// A runtime of its own, shut down in the background when dropped (so
/// dropping it on a tokio worker is fine); see the crate docs, "Runtime".
pub(crate) struct OwnRuntime(Option<Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl OwnRuntime {
    fn new() -> Result<OwnRuntime, StoreError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("srs-jetstream-content")
            .enable_all()
            .build()
            .map(|runtime| OwnRuntime(Some(runtime)))
            .map_err(|e| unavailable(format!("starting a runtime: {e}")))
    }

    /// Spawns `request` here and waits on a plain channel, so the caller
    /// may be any thread, a tokio worker included.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        request: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let runtime = self
            .0
            .as_ref()
            .ok_or_else(|| unavailable("the runtime is stopped"))?;
        let (tx, rx) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(request.await);
        });
        rx.recv()
            .map_err(|_| unavailable("the runtime stopped during a request"))?
    }

    /// Spawns `task` here, to run until the runtime is dropped.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.0 {
            runtime.spawn(task);
        }
    }
}

/// The bucket holding the content of the log in stream `stream`.
pub fn content_bucket(stream: &str) -> String {
    format!("{stream}-content")
}

/// The bucket holding the recordings' keys of the log in stream `stream`.
pub fn keys_bucket(stream: &str) -> String {
    format!("{stream}-keys")
}

/// The content and key buckets of one cluster, opened.
pub struct ClusterContent {
    /// The chunks (the `ChunkStore` of `srs serve --log-url`).
    pub objects: ContentObjects,
    /// The recordings' keys (a shared `KeyStore`).
    pub keys: ClusterKeys,
}

impl ClusterContent {
    /// Connects to the cluster of `options`, creates the buckets
    /// `<stream>-content` and `<stream>-keys` if missing (file storage,
    /// `options.replicas` replicas; the key bucket keeps one value a key),
    /// and checks that the keys there are wrapped under `key`.
    pub fn open(options: &JetStreamOptions, key: ClusterKey) -> Result<ClusterContent, StoreError> {
        if options.urls.is_empty() {
            return Err(StoreError::Refused("no server URL given".into()));
        }
        let runtime = Arc::new(OwnRuntime::new()?);
        let (objects, kv) = runtime.run({
            let options = options.clone();
            async move { open_buckets(&options).await }
        })?;
        // A bucket another node has just created may not have its leader
        // yet: its first write answers unavailable for a moment.
        let deadline = std::time::Instant::now() + OPEN_WAIT.max(options.timeout);
        let keys = loop {
            match ClusterKeys::new(runtime.clone(), kv.clone(), key.clone(), options.timeout) {
                Err(StoreError::Unavailable(e)) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "the key bucket does not take writes yet");
                    std::thread::sleep(Duration::from_millis(100));
                }
                opened => break opened?,
            }
        };
        Ok(ClusterContent {
            objects: ContentObjects::new(runtime, objects, content_bucket(&options.stream)),
            keys,
        })
    }
}

async fn open_buckets(
    options: &JetStreamOptions,
) -> Result<(object_store::ObjectStore, kv::Store), StoreError> {
    let (_, js) = crate::nats::connect(options, "srs-content")
        .await
        .map_err(unavailable)?;
    let objects_name = content_bucket(&options.stream);
    let keys_name = keys_bucket(&options.stream);
    let objects_config = object_store::Config {
        bucket: objects_name.clone(),
        description: Some(format!(
            "srs: the recordings' sealed content of the log {}",
            options.stream
        )),
        storage: StorageType::File,
        num_replicas: options.replicas,
        ..Default::default()
    };
    let keys_config = kv::Config {
        bucket: keys_name.clone(),
        description: format!(
            "srs: the recordings' keys of the log {}, wrapped under the cluster key",
            options.stream
        ),
        history: 1,
        storage: StorageType::File,
        num_replicas: options.replicas,
        ..Default::default()
    };
    let objects = crate::nats::while_forming(options.timeout, "the content bucket", || async {
        match js.get_object_store(&objects_name).await {
            Ok(store) => Ok(store),
            Err(_) => js
                .create_object_store(objects_config.clone())
                .await
                .map_err(|e| e.to_string()),
        }
    })
    .await
    .map_err(|e| unavailable(format!("bucket {objects_name}: {e}")))?;
    let kv = crate::nats::key_value(&js, keys_config, options.timeout)
        .await
        .map_err(unavailable)?;
    let history = kv
        .status()
        .await
        .map_err(|e| unavailable(format!("bucket {keys_name}: {e}")))?
        .history();
    if history != 1 {
        return Err(StoreError::Refused(format!(
            "the key bucket {keys_name} keeps {history} values a key: it must keep one (history 1), so that no superseded value outlives a key"
        )));
    }
    Ok((objects, kv))
}
