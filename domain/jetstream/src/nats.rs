//! What every connection of this crate does the same way: connecting to
//! the cluster, and opening a key-value bucket another node may be
//! creating at the same moment.

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

/// The bucket of `config`, created if missing (an existing one keeps its
/// own configuration, also when another node created it meanwhile).
pub(crate) async fn key_value(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, String> {
    let bucket = config.bucket.clone();
    match js.create_key_value(config).await {
        Ok(kv) => Ok(kv),
        Err(created) => js
            .get_key_value(&bucket)
            .await
            .map_err(|e| format!("bucket {bucket}: {created}; {e}")),
    }
}
