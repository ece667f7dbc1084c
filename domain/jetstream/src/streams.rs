//! Looking a stream up without creating it: [`stream_exists`].
//!
//! [`JetStreamBackend::open`](crate::JetStreamBackend::open) creates the
//! stream it is given when it is missing, which is what a writer wants.
//! The reading commands (`srs replay`, `state`, `export`, `verify` with
//! `--log-url`) ask first, so that a mistyped stream name is refused
//! instead of answered with an empty log it just created.

use std::time::Duration;

use async_nats::jetstream;
use srs_domain::log::{LogError, StorageError};

use crate::JetStreamOptions;

/// Whether the stream `options` names exists on its cluster. Connects,
/// asks the stream's info and disconnects; never creates anything. Runs
/// on a thread of its own, so any caller (a tokio worker included) may
/// call it.
pub fn stream_exists(options: &JetStreamOptions) -> Result<bool, LogError> {
    let options = options.clone();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| LogError::Storage(StorageError::Io(e)))?;
                runtime.block_on(ask(&options))
            })
            .join()
            .unwrap_or_else(|_| Err(unavailable("the stream lookup panicked")))
    })
}

async fn ask(options: &JetStreamOptions) -> Result<bool, LogError> {
    if options.urls.is_empty() {
        return Err(LogError::Storage(StorageError::Other(
            "the JetStream log: no server URL given".into(),
        )));
    }
    let (_, js) = crate::nats::connect(options, "srs")
        .await
        .map_err(unavailable)?;
    // A cluster that just started may not have elected its leaders yet.
    let deadline = tokio::time::Instant::now() + options.timeout.max(Duration::from_secs(10));
    loop {
        match js.get_stream(&options.stream).await {
            Ok(_) => return Ok(true),
            Err(e) => {
                if let jetstream::context::GetStreamErrorKind::JetStream(error) = e.kind() {
                    if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND {
                        return Ok(false);
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(unavailable(format!("stream {}: {e}", options.stream)));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn unavailable(what: impl std::fmt::Display) -> LogError {
    LogError::Unavailable {
        reason: format!("the JetStream log: {what}"),
    }
}
