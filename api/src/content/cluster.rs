//! The content store of `srs serve --log-url`: chunks in the cluster's
//! JetStream object store, keys in its KV bucket wrapped under the
//! cluster key (`srs_log_jetstream`, see its crate docs, "Content and
//! keys"), so that every server of the cluster serves every recording and
//! a deletion through any of them shreds it for all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use srs_domain::model::MAX_CHUNKS_AHEAD;
use srs_domain::seal::KeyRing;
use srs_log_jetstream::{ClusterContent, ClusterKey, ContentObjects, JetStreamOptions, StoreError};
use uuid::Uuid;

use super::store::{Area, ChunkStore, ContentError, ContentStore};

fn content_error(error: StoreError) -> ContentError {
    match error {
        StoreError::Unavailable(why) => ContentError::Unavailable(why),
        StoreError::Refused(why) => ContentError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(why),
        },
    }
}

impl ChunkStore for ContentObjects {
    fn put(&self, recording_id: Uuid, seq: u64, sealed: &[u8]) -> Result<(), ContentError> {
        ContentObjects::put(self, recording_id, seq, sealed).map_err(content_error)
    }

    fn get(&self, recording_id: Uuid, seq: u64) -> Result<Option<Vec<u8>>, ContentError> {
        ContentObjects::get(self, recording_id, seq).map_err(content_error)
    }

    fn contains(&self, recording_id: Uuid, seq: u64) -> Result<bool, ContentError> {
        ContentObjects::contains(self, recording_id, seq).map_err(content_error)
    }

    fn delete(&self, recording_id: Uuid, seq: u64) -> Result<(), ContentError> {
        ContentObjects::delete(self, recording_id, seq).map_err(content_error)
    }

    /// The log stores a chunk at most [`MAX_CHUNKS_AHEAD`] past the first
    /// one missing, so no stored seq is further from the one before.
    fn delete_recording(&self, recording_id: Uuid) -> Result<(), ContentError> {
        ContentObjects::delete_recording(self, recording_id, MAX_CHUNKS_AHEAD)
            .map_err(content_error)
    }

    /// One bucket: archiving is a state in the log only.
    fn move_to(&self, _recording_id: Uuid, _to: Area) -> Result<(), ContentError> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("JetStream object store {}", self.bucket())
    }
}

/// Opens the content store of data directory `data` over the cluster of
/// `log`, its keys wrapped under the cluster key `key`. Blocks
/// (connects, creates the buckets if missing).
pub fn open_cluster_content(
    data: &Path,
    log: &JetStreamOptions,
    key: ClusterKey,
) -> Result<ContentStore, ContentError> {
    let cluster = ClusterContent::open(log, key).map_err(content_error)?;
    Ok(ContentStore::with_stores(
        data,
        Arc::new(cluster.objects),
        KeyRing::with_store(Arc::new(cluster.keys)),
    ))
}
