//! What every connection of this crate does the same way: connecting to
//! the cluster, and opening a key-value bucket another node may be
//! creating at the same moment.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::Client;

use crate::backend::JetStreamOptions;

/// Connects to the servers of `options` as `name`: the client fails over
/// between them and, once connected, reconnects for ever; requests time
/// out after `options.timeout`.
pub(crate) async fn connect(
    options: &JetStreamOptions,
    name: &str,
) -> Result<(Client, jetstream::Context), String> {
    if options.urls.is_empty() {
        return Err("no server URL given".into());
    }
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(options.timeout)
        .request_timeout(Some(options.timeout))
        .max_reconnects(None)
        .connect(options.urls.as_slice())
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", options.urls.join(",")))?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(options.timeout);
    Ok((client, js))
}

/// How long opening a stream or a bucket waits for a cluster that is
/// still forming: electing its leaders, or not yet seeing every peer it
/// needs to place the replicas ("no suitable peers for placement").
pub(crate) const OPEN_WAIT: Duration = Duration::from_secs(30);

/// `attempt`'s first success, asked again every 100 ms while the
/// cluster may still be forming, until [`OPEN_WAIT`] (or `timeout`, if
/// longer) has passed; then its last error. `what` names it in the logs.
pub(crate) async fn while_forming<T, E, Fut>(
    timeout: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + OPEN_WAIT.max(timeout);
    loop {
        match attempt().await {
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "{what} is not ready yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            found => return found,
        }
    }
}

/// The bucket of `config`, created if missing (an existing one keeps its
/// own configuration, also when another node created it meanwhile),
/// asked for [`while_forming`].
pub(crate) async fn key_value(
    js: &jetstream::Context,
    config: kv::Config,
    timeout: Duration,
) -> Result<kv::Store, String> {
    let bucket = config.bucket.clone();
    while_forming(timeout, "a key bucket", || async {
        match js.create_key_value(config.clone()).await {
            Ok(kv) => Ok(kv),
            Err(created) => js
                .get_key_value(&bucket)
                .await
                .map_err(|e| format!("bucket {bucket}: {created}; {e}")),
        }
    })
    .await
}
