//! The content routes (merged into [`crate::http::app`]):
//!
//! | route | who | what |
//! |---|---|---|
//! | `PUT /recordings/{id}/chunks/{seq}` | the recording server's AGENT | store one chunk (1 byte to 8 MiB, `x-content-sha256` checked; chunk 0's `Content-Type`, `video/*`, `audio/*` or asciicast, declares the content's type) |
//! | `PUT /recordings/{id}/asciicast` | same | store an asciicast v2 file as the whole content, index its events |
//! | `GET /recordings/{id}/content` | whoever may play the recording (bearer token, or `?ticket=` from `playRecording`'s `ticketUrl`) | the decrypted content, `Range: bytes=...` honoured |
//! | `GET /recordings/{id}/chunks` | the recording server's AGENT, whoever may see the recording | the stored chunks (`{"recordingId","contentType","chunks":[{"seq","size","sha256"}],"storedBytes","nextSeq","ended"}`), to resume an upload at `nextSeq`; not a playback (GraphQL `recordingChunks` answers the same) |
//!
//! Uploads answer 201 for a newly stored chunk and 200 for an identical
//! one stored before, with `{"position","seq","size","sha256"}`: the log
//! position of its `ContentChunkStored`, and the SHA-256 of the plain
//! chunk as checked on arrival (the log holds the hash of the encrypted
//! form). Errors are `{"code","message"}` with the status of the code.
//!
//! The content of a recording is its chunks from seq 0 in order, up to the
//! first missing seq (an upload still in progress plays what is complete).
//!
//! # Content the log records but the disk lacks
//!
//! Before any status is sent, a content GET checks that the recording's
//! key and every chunk file the content consists of are on disk; if one is
//! not (a data directory copied or imported without its `content/`), it
//! answers 409 `CONTENT_MISSING` and records no playback. 409, not 410:
//! the content may come back (`srs restore`), and a deleted recording has
//! its own answer (404 `NOT_FOUND`; also when this server's key ring knows
//! the key was shredded before its read models saw the deletion, as
//! another server of a cluster deleted it). Should a chunk fail to read after the headers went out
//! (removed or altered meanwhile), the body stream fails and the
//! connection is aborted: the client sees a body shorter than its
//! `Content-Length` and an error, never a complete-looking short answer.
//!
//! # What an upload may be
//!
//! - `seq` is strict decimal: digits only, no sign, no leading zero (but
//!   `0` itself), at most 2^32-1; and at most
//!   [`MAX_CHUNKS_AHEAD`](srs_domain::model::MAX_CHUNKS_AHEAD) past the first
//!   missing chunk (room for a window of parallel uploads, not for sparse
//!   seqs).
//! - Quota: one recording (one part of a session) holds at most its
//!   server's `maxFileSizeMb` (MB of 2^20 bytes) of content, all chunks
//!   together (an asciicast is the chunk at seq 0). Session Recording
//!   rolls a recording file over at that size; so does an agent here: an
//!   upload that would exceed it answers 413 with code `VALIDATION` and a
//!   message saying to end the recording and continue in its next part.
//! - After `endRecording`, a recording takes no new content (409
//!   `CONFLICT`), except a chunk missing below the last one stored (a
//!   failed upload retried); an identical re-upload of a stored chunk still
//!   answers 200. A rollover needs no more grace: an agent sends a part's
//!   chunks before it ends that part and starts the next.
//! - The rules are checked before the chunk is written, under the
//!   recording's upload lock, and again when its event is appended.
//!
//! # Who learns what
//!
//! A caller who may not see the recording gets 404 `NOT_FOUND`
//! `recording <id> not found` whether it exists, was deleted or never
//! existed (the attempt is recorded as `AccessDenied`); one who sees it
//! but may not do this gets 403. Only those who may see a deleted
//! recording learn that it was deleted.
//!
//! # Playback facts
//!
//! A content GET is checked (may play) before anything else, and a GET
//! with a bearer token records the playback only when the answer carries
//! content: a 416 (range outside the content) records nothing. A GET by a
//! ticket records nothing: the ticket was handed out by `playRecording`,
//! which recorded the playback. Parallel `Range` requests of one
//! player share one `RecordingPlayed` per minute (see
//! `Service::record_played`), so they never conflict.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use srs_domain::app::AppError;
use srs_domain::log::EventStore as _;
use srs_domain::model::{
    chunk_event_id, Lifecycle, PlaybackKind, Principal, RecordingError, Role, DEFAULT_CONTENT_TYPE,
};
use uuid::Uuid;

use super::asciicast;
use super::store::{ContentError, MAX_CHUNK_BYTES};
use crate::auth::bearer_token;
use crate::error::{ApiError, Code};
use crate::state::{HttpState, Services};

/// The header carrying the hex SHA-256 of an uploaded body.
pub const SHA256_HEADER: &str = "x-content-sha256";

/// How long a mutation waits for the content store to follow the log.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The content routes.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/recordings/{id}/chunks/{seq}", put(put_chunk))
        .route("/recordings/{id}/chunks", get(list_chunks))
        .route("/recordings/{id}/asciicast", put(put_asciicast))
        .route("/recordings/{id}/content", get(get_content))
        .layer(DefaultBodyLimit::max(MAX_CHUNK_BYTES))
}

/// What an upload answers.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Receipt {
    pub position: u64,
    pub seq: u64,
    pub size: u64,
    pub sha256: String,
}

fn status_of(code: Code) -> StatusCode {
    match code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::Conflict => StatusCode::CONFLICT,
        Code::Validation => StatusCode::BAD_REQUEST,
        Code::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::ContentMissing => StatusCode::CONFLICT,
    }
}

fn error_response(error: ApiError) -> Response {
    Refused::from(error).into_response()
}

/// An upload or playback refused: the error and the HTTP status it is
/// answered with (the status of its code, or a more precise one such as
/// 413 for content over the quota).
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub error: ApiError,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused {
            status: status_of(error.code),
            error,
        }
    }
}

impl From<AppError> for Refused {
    fn from(error: AppError) -> Self {
        let status = match &error {
            AppError::Recording(RecordingError::ContentTooLarge { .. }) => {
                Some(StatusCode::PAYLOAD_TOO_LARGE)
            }
            _ => None,
        };
        let mut refused = Refused::from(ApiError::from(error));
        if let Some(status) = status {
            refused.status = status;
        }
        refused
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "code": self.error.code.as_str(), "message": self.error.message });
        (self.status, Json(body)).into_response()
    }
}

fn content_error(error: ContentError) -> ApiError {
    if error.is_unavailable() {
        return ApiError::unavailable(error);
    }
    ApiError::internal(error)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ContentError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(content_error)
}

async fn principal(state: &HttpState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer_token(headers)?
        .ok_or_else(|| ApiError::unauthenticated("a bearer token is required"))?;
    state
        .authenticate(token)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the bearer token is not valid"))
}

fn recording_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::validation(format!("`{text}` is not a recording id")))
}

/// A chunk seq as the route takes it: decimal digits only (no sign, no
/// spaces), no leading zero but `0` itself, at most 2^32-1.
pub fn parse_seq(text: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::validation(format!(
            "`{text}` is not a chunk seq: a decimal number from 0 to 4294967295, without sign or \
             leading zeros"
        ))
    };
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) || text.len() > 10 {
        return Err(bad());
    }
    let seq: u64 = text.parse().map_err(|_| bad())?;
    if seq > u64::from(u32::MAX) {
        return Err(bad());
    }
    Ok(seq)
}

/// The body, checked against its size limits and its `x-content-sha256`.
fn checked_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Bytes, String), ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::validation(format!("a chunk is at most {MAX_CHUNK_BYTES} bytes"))
        } else {
            ApiError::validation("the request body could not be read")
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::validation("a chunk is at least 1 byte"));
    }
    let claimed = headers
        .get(SHA256_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| ApiError::validation(format!("the {SHA256_HEADER} header is required")))?;
    let actual = hex::encode(Sha256::digest(&body));
    if !claimed.eq_ignore_ascii_case(&actual) {
        return Err(ApiError::validation(format!(
            "the body does not match its {SHA256_HEADER} (its SHA-256 is {actual})"
        )));
    }
    Ok((body, actual))
}

/// Runs an upload at its sender's priority: an agent's on the background
/// runtime (see [`crate::background`]), anyone else's here.
async fn at_priority<T: Send + 'static>(
    agent: bool,
    services: &Arc<Services>,
    upload: impl std::future::Future<Output = Result<T, Refused>> + Send + 'static,
) -> Result<T, Refused> {
    services
        .background
        .run_if(agent, upload)
        .await
        .map_err(|e| Refused::from(ApiError::internal(format!("an agent's upload ended: {e}"))))?
}

/// `PUT /recordings/{id}/chunks/{seq}`.
async fn put_chunk(
    State(state): State<HttpState>,
    Path((id, seq)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let outcome = async {
        let by = principal(&state, &headers).await?;
        let recording_id = recording_id(&id)?;
        let seq = parse_seq(&seq)?;
        let content_type = declared_type(&headers, seq)?;
        let services = state.services().clone();
        at_priority(by.role == Role::Agent, state.services(), async move {
            let (body, sha256) = checked_body(&headers, body)?;
            store_chunk(
                &services,
                &by,
                recording_id,
                seq,
                body,
                sha256,
                content_type,
            )
            .await
        })
        .await
    }
    .await;
    receipt_response(outcome)
}

/// The content type chunk 0's `Content-Type` declares for its recording:
/// a media type a player plays (`video/*`, `audio/*`,
/// `application/x-asciicast`, parameters such as `codecs` kept). No header,
/// `application/octet-stream` or a client's form default declares nothing;
/// other chunks' headers are not read. Anything else is refused before a
/// byte is written.
fn declared_type(headers: &HeaderMap, seq: u64) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    if seq != 0 {
        return Ok(None);
    }
    let text = value
        .to_str()
        .map_err(|_| ApiError::validation("the Content-Type header is not text"))?
        .trim();
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if matches!(
        essence.as_str(),
        "application/octet-stream" | "application/x-www-form-urlencoded"
    ) {
        return Ok(None);
    }
    let media = essence.starts_with("video/")
        || essence.starts_with("audio/")
        || essence == asciicast::CONTENT_TYPE;
    let clean = text.len() <= 127
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/+-.;=_ \"".contains(c));
    if !media || !clean || essence.ends_with('/') {
        return Err(ApiError::validation(format!(
            "`{text}` is not a content type srs plays: video/..., audio/... or {} (or none)",
            asciicast::CONTENT_TYPE
        )));
    }
    Ok(Some(format!(
        "{essence}{}",
        text.find(';').map(|at| &text[at..]).unwrap_or_default()
    )))
}

/// One stored chunk, as `GET /recordings/{id}/chunks` lists it.
#[derive(Debug, Serialize)]
struct ListedChunk {
    seq: u64,
    size: u64,
    sha256: String,
}

/// What `GET /recordings/{id}/chunks` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ChunkListing {
    recording_id: Uuid,
    content_type: String,
    chunks: Vec<ListedChunk>,
    stored_bytes: u64,
    next_seq: u64,
    ended: bool,
}

/// `GET /recordings/{id}/chunks`: the chunks stored so far, for the
/// recording server's AGENT to resume an upload (and whoever may see the
/// recording). Listing is not a playback: nothing is recorded but a
/// refusal.
async fn list_chunks(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let by = principal(&state, &headers).await?;
        let recording_id = recording_id(&id)?;
        let recording = state
            .services()
            .service
            .recording_content(&by, recording_id)
            .await?
            .state;
        Ok::<_, ApiError>(ChunkListing {
            recording_id,
            content_type: recording
                .content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
            chunks: recording
                .chunks
                .iter()
                .map(|(&seq, chunk)| ListedChunk {
                    seq,
                    size: chunk.size,
                    sha256: chunk.sha256.clone(),
                })
                .collect(),
            stored_bytes: recording.chunks.values().map(|c| c.size).sum(),
            next_seq: (0u64..)
                .find(|seq| !recording.chunks.contains_key(seq))
                .unwrap_or(0),
            ended: recording.ended_at.is_some(),
        })
    }
    .await;
    match outcome {
        Ok(listing) => Json(listing).into_response(),
        Err(error) => error_response(error),
    }
}

/// `PUT /recordings/{id}/asciicast`: the whole content (seq 0), then its
/// events indexed on the recording. The recording must be live, since
/// session events are only recorded into live recordings.
async fn put_asciicast(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let outcome = async {
        let by = principal(&state, &headers).await?;
        let recording_id = recording_id(&id)?;
        let services = state.services().clone();
        at_priority(by.role == Role::Agent, state.services(), async move {
            let (body, sha256) = checked_body(&headers, body)?;
            store_asciicast(&services, &by, recording_id, body, sha256).await
        })
        .await
    }
    .await;
    receipt_response(outcome)
}

/// Stores a whole asciicast v2 file as a live recording's content (chunk
/// 0, `application/x-asciicast`) and indexes its events on the recording:
/// what `PUT /recordings/{id}/asciicast` does once the body is checked
/// (`sha256`: its hex SHA-256).
pub async fn store_asciicast(
    services: &Arc<Services>,
    by: &Principal,
    recording_id: Uuid,
    body: Bytes,
    sha256: String,
) -> Result<(StatusCode, Receipt), Refused> {
    let events = asciicast::parse(recording_id, &body).map_err(ApiError::validation)?;
    let target = services.service.content_target(by, recording_id).await?;
    if target.recording.state.lifecycle != Lifecycle::Live {
        return Err(ApiError::validation(
            "an asciicast is uploaded while its recording is live (before endRecording)",
        )
        .into());
    }
    let receipt = store_chunk(
        services,
        by,
        recording_id,
        0,
        body,
        sha256,
        Some(asciicast::CONTENT_TYPE.to_string()),
    )
    .await?;
    // Event ids are stable, so a repeated upload indexes nothing twice.
    for batch in events.chunks(services.limits.max_batch.max(1)) {
        services
            .service
            .index_content_events(by, recording_id, batch.to_vec())
            .await?;
    }
    Ok(receipt)
}

fn receipt_response(outcome: Result<(StatusCode, Receipt), Refused>) -> Response {
    match outcome {
        Ok((status, receipt)) => (status, Json(receipt)).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// Stores chunk `seq` of a recording: idempotent for the same body, a
/// CONFLICT for another. The content rules (see the module docs) are
/// checked before anything is written. The encrypted file is durable
/// before its event is appended, and the answer waits for the append to be
/// durable.
pub async fn store_chunk(
    services: &Arc<Services>,
    by: &Principal,
    recording_id: Uuid,
    seq: u64,
    body: Bytes,
    sha256: String,
    content_type: Option<String>,
) -> Result<(StatusCode, Receipt), Refused> {
    let content = services.content.clone();
    let _guard = content.lock(recording_id).await;
    let target = services.service.content_target(by, recording_id).await?;
    let max_file_size_mb = target.max_file_size_mb;
    let target = target.recording;
    let receipt = |position| Receipt {
        position,
        seq,
        size: body.len() as u64,
        sha256: sha256.clone(),
    };
    if let Some(stored) = target.state.chunks.get(&seq) {
        let stored_sha = stored.sha256.clone();
        let store = content.clone();
        let existing = blocking(move || store.read_chunk(recording_id, seq, &stored_sha)).await?;
        if existing != body.as_ref() {
            return Err(ApiError::new(
                Code::Conflict,
                format!(
                    "chunk {seq} of recording {recording_id} is already stored with other content"
                ),
            )
            .into());
        }
        let position = services
            .store
            .read_event(chunk_event_id(recording_id, seq))
            .await
            .map_err(ApiError::from)?
            .map_or(target.last_position, |e| e.position);
        return Ok((StatusCode::OK, receipt(position)));
    }
    target
        .state
        .check_new_chunk(seq, body.len() as u64, max_file_size_mb)
        .map_err(AppError::from)?;
    let store = content.clone();
    let plain = body.clone();
    let written = blocking(move || store.write_chunk(recording_id, seq, &plain)).await?;
    let ours = written.sha256.clone();
    let appended = services
        .service
        .store_content_chunk(
            by,
            recording_id,
            seq,
            written.size,
            written.sha256,
            content_type,
        )
        .await;
    match appended {
        Ok(executed) => {
            services.metrics.appended();
            Ok((StatusCode::CREATED, receipt(executed.last_position)))
        }
        Err(srs_domain::app::AppError::Log(log)) if log.is_unavailable() => {
            // Storage failed: the event may still be stored (the log makes
            // it durable when it heals), so the file stays. A retried upload
            // is then answered from the log (200) or writes it again; an
            // orphan the log does not know is never served.
            Err(srs_domain::app::AppError::Log(log).into())
        }
        Err(error) => {
            // Refused. Another server of a cluster may have taken the same
            // chunk meanwhile: the same bytes seal to the same file, so the
            // log's chunk is this upload's (answered as stored), and a
            // chunk the log names is never removed.
            if let Ok(now) = services.service.content_target(by, recording_id).await {
                if let Some(stored) = now.recording.state.chunks.get(&seq) {
                    if stored.sha256 != ours {
                        return Err(error.into());
                    }
                    let position = services
                        .store
                        .read_event(chunk_event_id(recording_id, seq))
                        .await
                        .map_err(ApiError::from)?
                        .map_or(now.recording.last_position, |e| e.position);
                    return Ok((StatusCode::OK, receipt(position)));
                }
            }
            // Leave no file behind that the log does not know.
            let store = content.clone();
            if let Err(e) = blocking(move || store.discard_chunk(recording_id, seq)).await {
                tracing::warn!(error = ?e, "cannot remove a refused chunk");
            }
            Err(error.into())
        }
    }
}

/// A byte range of a body of `total` bytes, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// What a `Range` header asks of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No header, or one this server does not honour (several ranges,
    /// another unit, malformed): send the whole body (RFC 9110 allows it).
    Whole,
    Part(ByteRange),
    /// Outside the body: 416.
    Unsatisfiable,
}

/// Parses a `Range` header against `total` bytes.
pub fn parse_range(value: Option<&str>, total: u64) -> RangeRequest {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeRequest::Whole;
        };
        if suffix == 0 || total == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Part(ByteRange {
            start: total.saturating_sub(suffix),
            end: total - 1,
        });
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeRequest::Whole;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return RangeRequest::Whole,
        }
    };
    if start >= total {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Part(ByteRange {
        start,
        end: end.min(total - 1),
    })
}

/// `GET /recordings/{id}/content`.
/// `?ticket=` of a content GET (see `ticket`).
#[derive(serde::Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

async fn get_content(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    Query(query): Query<TicketQuery>,
    headers: HeaderMap,
) -> Response {
    match content_response(&state, &id, query.ticket.as_deref(), &headers).await {
        Ok(response) => response,
        Err(error) => error_response(error),
    }
}

async fn content_response(
    state: &HttpState,
    id: &str,
    ticket: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let recording_id = recording_id(id)?;
    // A bearer header wins; a ticket serves those who cannot send one.
    let (by, by_ticket) = match ticket {
        Some(ticket) if bearer_token(headers)?.is_none() => (
            state.services().ticket_principal(ticket, recording_id)?,
            true,
        ),
        _ => (principal(state, headers).await?, false),
    };
    let services = state.services().clone();
    // Judges "may see" and "may play" (restrictions, grants, archive); a
    // refusal is recorded as AccessDenied. Nothing else is recorded yet.
    let recording = services
        .service
        .playable(&by, recording_id, PlaybackKind::Play)
        .await?
        .state;
    let mut chunks = Vec::new();
    for (expected, (&seq, chunk)) in (0u64..).zip(&recording.chunks) {
        if seq != expected {
            break;
        }
        chunks.push((seq, chunk.size, chunk.sha256.clone()));
    }
    let total: u64 = chunks.iter().map(|c| c.1).sum();
    // Everything the log promises must be on disk before a status is
    // sent: a 200 whose body stops short of `contentSize` would look like
    // a complete (shorter) recording to a player.
    if !chunks.is_empty() {
        let content = services.content.clone();
        let seqs: Vec<u64> = chunks.iter().map(|c| c.0).collect();
        let missing = blocking(move || {
            if !content.has_key(recording_id) {
                if content.keys().was_shredded(recording_id) {
                    return Ok(Some(Lacking::Shredded));
                }
                return Ok(Some(Lacking::Part("its content key".to_string())));
            }
            for seq in seqs {
                if !content.has_chunk(recording_id, seq)? {
                    return Ok(Some(Lacking::Part(format!("chunk {seq}"))));
                }
            }
            Ok(None)
        })
        .await?;
        if let Some(Lacking::Shredded) = missing {
            return Err(ApiError::not_found(format!(
                "recording {recording_id} was deleted: its content is shredded"
            )));
        }
        if let Some(Lacking::Part(what)) = missing {
            tracing::error!(recording = %recording_id, missing = %what, "content the log records is not on disk");
            return Err(ApiError::new(
                Code::ContentMissing,
                format!(
                    "the content of recording {recording_id} is not on this server ({what} is missing); \
                     restore it from a backup (`srs restore`)"
                ),
            ));
        }
    }
    let content_type = recording
        .content_type
        .clone()
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());
    let range = match parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        total,
    ) {
        RangeRequest::Whole => None,
        RangeRequest::Part(range) => Some(range),
        RangeRequest::Unsatisfiable => {
            let mut response = error_response(ApiError::validation(format!(
                "the range is outside the content ({total} bytes)"
            )));
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            insert(
                &mut response,
                header::CONTENT_RANGE,
                &format!("bytes */{total}"),
            );
            // Nothing was played: nothing is recorded.
            return Ok(response);
        }
    };
    // The answer carries content: a direct fetch is a playback fact (one
    // per player, recording and minute, however many ranges it asks for).
    // A ticket's fetches are the playback `playRecording` recorded when
    // it issued the ticket.
    if !by_ticket {
        let played = services
            .service
            .record_played(&by, recording_id, PlaybackKind::Play)
            .await?;
        if !played.positions.is_empty() && !played.deduplicated {
            services.metrics.appended();
        }
    }
    let (start, end) = match range {
        Some(r) => (r.start, r.end + 1),
        None => (0, total),
    };
    // Only the chunks the range touches, each cut to the range.
    let mut parts = Vec::new();
    let mut offset = 0u64;
    for (seq, size, sha) in chunks {
        let (chunk_start, chunk_end) = (offset, offset + size);
        offset = chunk_end;
        if chunk_end <= start || chunk_start >= end {
            continue;
        }
        let from = start.saturating_sub(chunk_start) as usize;
        let to = (end.min(chunk_end) - chunk_start) as usize;
        parts.push((seq, sha, from, to));
    }
    let content = services.content.clone();
    let body = futures_util::stream::iter(parts).then(move |(seq, sha, from, to)| {
        let content = content.clone();
        async move {
            let plain = blocking(move || content.read_chunk(recording_id, seq, &sha))
                .await
                .map_err(|e| std::io::Error::other(e.message))?;
            Ok::<_, std::io::Error>(Bytes::from(plain).slice(from..to))
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    insert(&mut response, header::CONTENT_TYPE, &content_type);
    insert(&mut response, header::ACCEPT_RANGES, "bytes");
    insert(
        &mut response,
        header::CONTENT_LENGTH,
        &(end - start).to_string(),
    );
    insert(&mut response, header::CACHE_CONTROL, "no-store");
    if let Some(r) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        insert(
            &mut response,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{total}", r.start, r.end),
        );
    }
    Ok(response)
}

/// What a content GET finds missing of what the log records.
enum Lacking {
    /// The recording's key was shredded (it was deleted, through this
    /// server or another of its cluster, whose deletion this server's
    /// read models may not have seen yet).
    Shredded,
    /// The key or a chunk is not there.
    Part(String),
}

fn insert(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_zero_declares_a_playable_content_type_only() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            headers
        };
        let declared = |value: &str, seq| declared_type(&with(value), seq);
        assert_eq!(declared_type(&HeaderMap::new(), 0).unwrap(), None);
        assert_eq!(
            declared("video/webm", 0).unwrap().as_deref(),
            Some("video/webm")
        );
        assert_eq!(
            declared("Video/WebM; codecs=\"vp9\"", 0)
                .unwrap()
                .as_deref(),
            Some("video/webm; codecs=\"vp9\"")
        );
        assert_eq!(
            declared("application/x-asciicast", 0).unwrap().as_deref(),
            Some("application/x-asciicast")
        );
        assert_eq!(declared("application/octet-stream", 0).unwrap(), None);
        assert_eq!(
            declared("application/x-www-form-urlencoded", 0).unwrap(),
            None
        );
        assert_eq!(declared("text/html", 1).unwrap(), None);
        for bad in [
            "text/html",
            "video/",
            "application/json",
            "video/webm<script>",
        ] {
            assert!(declared(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeRequest::*;
        let r = |start, end| Part(ByteRange { start, end });
        assert_eq!(parse_range(None, 100), Whole);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), r(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), r(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), r(90, 99));
        assert_eq!(parse_range(Some("bytes=-500"), 100), r(0, 99));
        assert_eq!(parse_range(Some("bytes=50-500"), 100), r(50, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=9-1"), 100), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), Whole);
    }

    #[test]
    fn a_chunk_seq_is_strict_decimal() {
        assert_eq!(parse_seq("0").ok(), Some(0));
        assert_eq!(parse_seq("7").ok(), Some(7));
        assert_eq!(parse_seq("4294967295").ok(), Some(u64::from(u32::MAX)));
        for bad in [
            "",
            "+3",
            "-1",
            "000",
            "01",
            " 1",
            "1 ",
            "1e3",
            "0x10",
            "4294967296",
            "99999999999",
            "١",
        ] {
            let error = parse_seq(bad).expect_err(bad);
            assert_eq!(error.code, Code::Validation, "{bad}");
        }
    }
}
