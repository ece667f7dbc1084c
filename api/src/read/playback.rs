//! A recording's timeline read from its log stream: the session events,
//! the stored chunks and the content type, folded from the stream's own
//! facts rather than from the write side's aggregate, so reading it
//! appends nothing and takes no lock of the command side.

use std::collections::BTreeMap;

use srs_domain::log::{Envelope, EventStore};
use srs_domain::model::{self as dm, DomainEvent};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::state::Services;

/// One stored chunk: its plain size and the hex SHA-256 the log holds.
pub struct Chunk {
    pub size: u64,
    pub sha256: String,
}

/// What a recording's stream says about its playback.
pub struct Timeline {
    /// Every envelope of the stream, in version order.
    pub envelopes: Vec<Envelope<DomainEvent>>,
    /// The highest log position of the stream (at least `since`).
    pub follow_from: u64,
    /// The declared content type, or the default one.
    pub content_type: String,
    /// The stored chunks by seq.
    pub chunks: BTreeMap<u64, Chunk>,
}

impl Timeline {
    /// The sum of the stored chunks' sizes.
    pub fn content_size(&self) -> u64 {
        self.chunks.values().map(|c| c.size).sum()
    }
}

/// The timeline of `recording`; `follow_from` is at least `since` (the
/// position of a playback fact just written, which belongs to the stream
/// but may not be read back yet).
pub async fn timeline(services: &Services, recording: Uuid, since: u64) -> ApiResult<Timeline> {
    let stream = dm::stream_name("recording", recording);
    let mut timeline = Timeline {
        envelopes: Vec::new(),
        follow_from: since,
        content_type: dm::DEFAULT_CONTENT_TYPE.to_string(),
        chunks: BTreeMap::new(),
    };
    let mut version = 1;
    loop {
        let batch = services.store.read_stream(&stream, version, 1024).await?;
        let read = batch.len();
        for envelope in batch {
            version = envelope.version + 1;
            timeline.follow_from = timeline.follow_from.max(envelope.position);
            match &envelope.payload {
                DomainEvent::ContentChunkStored {
                    seq, size, sha256, ..
                } => {
                    timeline.chunks.insert(
                        *seq,
                        Chunk {
                            size: *size,
                            sha256: sha256.clone(),
                        },
                    );
                }
                DomainEvent::ContentTypeDeclared { content_type, .. } => {
                    timeline.content_type = content_type.clone();
                }
                _ => {}
            }
            timeline.envelopes.push(envelope);
        }
        if read < 1024 {
            break;
        }
    }
    Ok(timeline)
}
