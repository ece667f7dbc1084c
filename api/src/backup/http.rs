//! The routes that stream a copy of a running server's data (merged into
//! [`crate::http::app`]):
//!
//! | route | who | what |
//! |---|---|---|
//! | `POST /backup` | ADMIN of all sites | a backup file (see the module docs of `backup`); body `{"wrapping": {...}, "wrapping_key": "<hex>"}` |
//! | `GET /log/export` | who may read the whole history (ADMIN or AUDITOR of all sites) | the `srs export` file of the log up to the head |
//!
//! A backup carries every recording's key, so it is the ADMIN's alone
//! (the action checked is `MANAGE_RECORDINGS` on the whole installation);
//! an export carries the log only, like `history`. A refusal is an
//! `AccessDenied` fact and answers `{"code","message"}` with 401/403.
//!
//! The file is produced on a blocking thread and streamed as it is
//! written (memory stays flat). Failures before the first bytes answer an
//! error status; a failure after them aborts the connection, so the client
//! never holds a file that looks complete (and both formats end with a
//! trailer that a cut file lacks). Each copy is recorded once it is
//! complete (`BackupTaken`, `LogExported`, actor the caller) before the
//! stream ends: a copy whose fact could not be written is aborted.
//!
//! The wrapping key travels in the request body: the connection must be
//! confidential (TLS in production).

use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use srs_domain::actor::Actor;
use srs_domain::model::{Action, Principal, Target};
use tokio::sync::mpsc;

use super::format::{BackupError, Wrapping, WrappingKey};
use super::write::{record_backup, write_backup};
use crate::auth::bearer_token;
use crate::error::{ApiError, Code};
use crate::state::{HttpState, Services};

/// The streaming routes.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/backup", post(post_backup))
        .route("/log/export", get(get_export))
}

#[derive(Deserialize)]
struct BackupRequest {
    wrapping: Wrapping,
    wrapping_key: String,
}

fn status_of(code: Code) -> StatusCode {
    match code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::Conflict | Code::ContentMissing => StatusCode::CONFLICT,
        Code::Validation => StatusCode::BAD_REQUEST,
        Code::Timeout | Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    }
}

fn error_response(error: ApiError) -> Response {
    let body = serde_json::json!({ "code": error.code.as_str(), "message": error.message });
    (status_of(error.code), Json(body)).into_response()
}

async fn caller(state: &HttpState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer_token(headers)?
        .ok_or_else(|| ApiError::unauthenticated("a bearer token is required"))?;
    state
        .authenticate(token)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the bearer token is not valid"))
}

fn actor_of(by: &Principal) -> Actor {
    Actor::Principal {
        token_id: by.token_id,
        name: by.name.clone(),
    }
}

/// `POST /backup`.
async fn post_backup(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = async {
        let by = caller(&state, &headers).await?;
        let services = state.services().clone();
        services.service
            .authorize(&by, Action::ManageRecordings, Target::Global)
            .await?;
        let request: BackupRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::validation(format!(
                "the body is {{\"wrapping\": {{...}}, \"wrapping_key\": \"<hex>\"}}: {e}"
            ))
        })?;
        let key = WrappingKey::from_hex(&request.wrapping_key)
            .map_err(|e| ApiError::validation(e.to_string()))?;
        let wrapping = request.wrapping;
        wrapping
            .validate()
            .map_err(|e| ApiError::validation(e.to_string()))?;
        Ok(stream_blocking(services, move |services, out, runtime| {
            let (_, summary) =
                write_backup(&services.store, &services.content, Some(runtime), &wrapping, &key, out)
                    .map_err(|e| match e {
                        BackupError::Source(why) => ApiError::new(Code::ContentMissing, why),
                        other => ApiError::internal(other),
                    })?;
            runtime
                .block_on(record_backup(&services.store, &summary, actor_of(&by), &by.name))
                .map_err(ApiError::internal)?;
            tracing::info!(position = summary.position, chunks = summary.chunks, keys = summary.keys, by = %by.name, "backup streamed");
            Ok(())
        })
        .await)
    }
    .await;
    outcome.unwrap_or_else(error_response)
}

/// `GET /log/export`.
async fn get_export(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let outcome = async {
        let by = caller(&state, &headers).await?;
        let services = state.services().clone();
        crate::read::access::authorize_global(&services, &by, Action::ReadHistory).await?;
        Ok(
            stream_blocking(services, move |services, mut out, runtime| {
                let summary =
                    srs_replay::export(&services.store, &mut out).map_err(ApiError::internal)?;
                runtime.block_on(record_export_as(
                    services,
                    &summary,
                    actor_of(&by),
                    &by.name,
                ))?;
                Ok(())
            })
            .await,
        )
    }
    .await;
    outcome.unwrap_or_else(error_response)
}

async fn record_export_as(
    services: &Services,
    summary: &srs_replay::ExportSummary,
    actor: Actor,
    by: &str,
) -> Result<u64, ApiError> {
    use srs_domain::log::{EventStore, ExpectedVersion, NewEvent};
    use srs_domain::model::{DomainEvent, LOG_EXPORTS_STREAM};
    let event = DomainEvent::LogExported {
        to_position: summary.head.position,
        head_hash: summary.head.hash.to_string(),
        file_sha256: summary.sha256.clone(),
        events: summary.count,
        by: by.to_owned(),
        at: srs_domain::time::Timestamp::now(),
    };
    let appended = EventStore::append(
        &services.store,
        LOG_EXPORTS_STREAM,
        ExpectedVersion::Any,
        vec![NewEvent::new(actor, event)],
    )
    .await
    .map_err(ApiError::from)?;
    Ok(appended.last_position())
}

/// Bytes a blocking producer writes, sent to the response body in pieces.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, ApiError>>,
    buf: Vec<u8>,
}

const PIECE: usize = 256 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx.blocking_send(Ok(piece)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

/// Runs `produce` on a blocking thread, streaming what it writes. An
/// error before the first bytes is answered with its code's status; after
/// them, the stream fails and the connection is aborted.
async fn stream_blocking(
    services: Arc<Services>,
    produce: impl FnOnce(&Services, &mut ChannelWriter, &tokio::runtime::Handle) -> Result<(), ApiError>
        + Send
        + 'static,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, ApiError>>(4);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(PIECE),
        };
        let result = produce(&services, &mut out, &runtime)
            .and_then(|()| out.flush().map_err(ApiError::internal));
        if let Err(error) = result {
            tracing::error!(code = %error.code, message = %error.message, "streaming a copy of the data failed");
            let _ = tx.blocking_send(Err(error));
        }
    });
    let first = match rx.recv().await {
        Some(Ok(piece)) => piece,
        Some(Err(error)) => return error_response(error),
        None => Bytes::new(),
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item.map_err(|e| std::io::Error::other(e.message)), rx))
    });
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

use futures_util::StreamExt as _;
