//! Recordings as the catalogue holds them and as one caller sees them
//! ([`access::Sight`]), and what belongs to one recording: its session
//! events and performance samples (read from its log stream), detections,
//! responses, comments and event visualization.

use std::sync::Arc;

use srs_domain::log::EventStore as _;
use srs_domain::model::{self as dm, PerformanceSummary, Principal, SessionEventType};
use srs_domain::seal::{self, SessionEventShown};
use srs_projections::models::catalogue::{RecordingPage, RecordingQuery, RecordingRow};
use srs_projections::models::comments::CommentRow;
use srs_projections::models::detections::{
    DetectionFilter, DetectionRow, ResponseRow, VisualBucket,
};
use srs_projections::models::Visibility;
use uuid::Uuid;

use super::access::{self, Sight};
use crate::error::ApiResult;
use crate::state::Services;

/// Events read from a log stream at once.
const STREAM_BATCH: usize = 1024;

/// A recording the caller sees, with what it may do with it.
pub type Seen = (Arc<RecordingRow>, Visibility);

/// A page of the recordings `caller` sees (`recordings`), with the log
/// position it reflects; roles that see no recordings are refused.
pub async fn recordings(
    services: &Services,
    caller: &Principal,
    query: &RecordingQuery,
    at_least: Option<i32>,
) -> ApiResult<(RecordingPage, u64)> {
    access::authorize_recordings(services, caller).await?;
    services.at_least(at_least).await?;
    // Taken before the search: the page holds every event up to it.
    let as_of = services.reads.applied();
    let sight = Sight::of(services, caller)?;
    Ok((sight.catalogue().search(sight.viewer(), query)?, as_of))
}

/// One recording; `None` when absent or not visible to `caller`
/// (`recording`); roles that see no recordings are refused.
pub async fn recording(
    services: &Services,
    caller: &Principal,
    recording: Uuid,
    at_least: Option<i32>,
) -> ApiResult<Option<Seen>> {
    access::authorize_recordings(services, caller).await?;
    services.at_least(at_least).await?;
    visible(services, caller, recording)
}

/// One recording if `caller` sees it (a detection's, a hold's recording).
pub fn visible(
    services: &Services,
    caller: &Principal,
    recording: Uuid,
) -> ApiResult<Option<Seen>> {
    Sight::of(services, caller)?.recording(recording)
}

/// Whether the recording was deleted (its session data shredded);
/// unknown ones are not.
pub fn deleted(services: &Services, recording: Uuid) -> ApiResult<bool> {
    Ok(services
        .reads
        .catalogue()?
        .get(recording)?
        .is_some_and(|row| row.deleted()))
}

/// One session event of a recording's stream, with where it is.
pub struct StoredSessionEvent {
    /// Its version in the recording's stream (the page cursor).
    pub version: u64,
    /// Its log position.
    pub position: u64,
    pub recording_id: Uuid,
    /// Its data opened under the recording's key, or shredded.
    pub shown: SessionEventShown,
}

/// A page of a recording's session events.
pub struct SessionEventPage {
    pub items: Vec<StoredSessionEvent>,
    pub has_next_page: bool,
}

/// The session events of `row`'s stream from version `from_version`, of
/// `types` when given, at most `limit` (`Recording.events`: the caller
/// sees the recording).
pub async fn session_events(
    services: &Services,
    row: &RecordingRow,
    from_version: u64,
    types: Option<&[SessionEventType]>,
    limit: usize,
) -> ApiResult<SessionEventPage> {
    let stream = dm::stream_name("recording", row.id);
    let keys = services.content.keys();
    let mut items = Vec::new();
    let mut version = from_version;
    let mut has_next_page = false;
    'read: loop {
        let batch = services
            .store
            .read_stream(&stream, version, STREAM_BATCH)
            .await?;
        let read = batch.len();
        for envelope in &batch {
            version = envelope.version + 1;
            let Some((recording_id, _, shown)) =
                seal::session_event(keys, &envelope.payload, row.deleted())
            else {
                continue;
            };
            if types.is_some_and(|t| !t.contains(&shown.event_type)) {
                continue;
            }
            if items.len() == limit {
                has_next_page = true;
                break 'read;
            }
            items.push(StoredSessionEvent {
                version: envelope.version,
                position: envelope.position,
                recording_id,
                shown,
            });
        }
        if read < STREAM_BATCH {
            break;
        }
    }
    Ok(SessionEventPage {
        items,
        has_next_page,
    })
}

/// The recording's performance samples summed up, read from its stream
/// (`DataPoints.performance`; the recording is not deleted).
pub async fn performance(services: &Services, recording: Uuid) -> ApiResult<PerformanceSummary> {
    let stream = dm::stream_name("recording", recording);
    let keys = services.content.keys();
    let mut samples = Vec::new();
    let mut version = 1;
    loop {
        let batch = services
            .store
            .read_stream(&stream, version, STREAM_BATCH)
            .await?;
        for envelope in &batch {
            version = envelope.version + 1;
            let Some((_, _, shown)) = seal::session_event(keys, &envelope.payload, false) else {
                continue;
            };
            if shown.event_type != SessionEventType::PerformanceSample {
                continue;
            }
            if let Some(data) = shown.data.plain() {
                samples.push(data);
            }
        }
        if batch.len() < STREAM_BATCH {
            break;
        }
    }
    Ok(PerformanceSummary::of(&samples))
}

/// The detections of a recording, newest first, in pages of 500 until
/// at least `at_most` are read (`Recording.detections`).
pub fn detections(
    services: &Services,
    recording: Uuid,
    at_most: usize,
) -> ApiResult<Vec<DetectionRow>> {
    let filter = DetectionFilter {
        recording_id: Some(recording),
        ..DetectionFilter::default()
    };
    let detections = services.reads.detections()?;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = detections.search(&filter, Some(500), after.as_deref())?;
        out.extend(page.items.into_iter().map(|(_, row)| row));
        if !page.has_next_page || out.len() >= at_most {
            break;
        }
        after = page.end_cursor;
    }
    Ok(out)
}

/// The first 500 detections of a recording, newest first
/// (`Playback.detections`).
pub fn first_detections(services: &Services, recording: Uuid) -> ApiResult<Vec<DetectionRow>> {
    let filter = DetectionFilter {
        recording_id: Some(recording),
        ..DetectionFilter::default()
    };
    let page = services
        .reads
        .detections()?
        .search(&filter, Some(500), None)?;
    Ok(page.items.into_iter().map(|(_, row)| row).collect())
}

/// The comments on a recording.
pub fn comments(services: &Services, recording: Uuid) -> ApiResult<Vec<CommentRow>> {
    Ok(services.reads.comments()?.for_recording(recording)?)
}

/// The response actions triggered on a recording's session.
pub fn responses(services: &Services, recording: Uuid) -> ApiResult<Vec<ResponseRow>> {
    Ok(services
        .reads
        .detections()?
        .responses_for_recording(recording)?)
}

/// Events and detections per type in buckets of `bucket_sec` seconds from
/// the session start.
pub fn event_visualization(
    services: &Services,
    recording: Uuid,
    bucket_sec: u64,
) -> ApiResult<Vec<VisualBucket>> {
    Ok(services
        .reads
        .detections()?
        .recording_visualization(recording, bucket_sec)?)
}

/// `Recording.playback`, a read: the timeline of a recording `caller`
/// sees (`visibility`), when it may play it (else FORBIDDEN, the refusal
/// recorded); nothing is recorded for the playback itself.
pub async fn playback(
    services: &Services,
    caller: &Principal,
    row: &RecordingRow,
    visibility: Visibility,
) -> ApiResult<super::playback::Timeline> {
    access::authorize_playback(services, caller, row, visibility).await?;
    super::playback::timeline(services, row.id, 0).await
}
