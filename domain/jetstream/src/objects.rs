//! [`ContentObjects`]: the recordings' sealed content chunks in the
//! JetStream object store `<stream>-content` (see the crate docs, "Content
//! and keys").

use std::sync::Arc;

use async_nats::jetstream::object_store::{
    DeleteErrorKind, GetErrorKind, InfoErrorKind, ObjectStore,
};
use tokio::io::AsyncReadExt as _;
use uuid::Uuid;

use crate::content::{unavailable, OwnRuntime, StoreError};

/// The chunks of a cluster's recordings, one object each, named
/// `<recording>/<seq>` (seq zero-padded to 20 digits). The bytes are
/// stored as given (sealed already, by the content store above).
pub struct ContentObjects {
    runtime: Arc<OwnRuntime>,
    store: ObjectStore,
    bucket: String,
}

/// The object name of chunk `seq` of a recording.
pub fn object_name(recording_id: Uuid, seq: u64) -> String {
    format!("{recording_id}/{seq:020}")
}

impl ContentObjects {
    pub(crate) fn new(
        runtime: Arc<OwnRuntime>,
        store: ObjectStore,
        bucket: String,
    ) -> ContentObjects {
        ContentObjects {
            runtime,
            store,
            bucket,
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Stores chunk `seq` (replacing one of the same seq): answered once
    /// every message of the object is acknowledged by a quorum.
    pub fn put(&self, recording_id: Uuid, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let store = self.store.clone();
        let name = object_name(recording_id, seq);
        let bytes = bytes.to_vec();
        self.runtime.run(async move {
            let mut reader: &[u8] = &bytes;
            store
                .put(name.as_str(), &mut reader)
                .await
                .map(drop)
                .map_err(|e| unavailable(format!("storing {name}: {e}")))
        })
    }

    /// Chunk `seq`'s bytes, `None` when it is not stored.
    pub fn get(&self, recording_id: Uuid, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let store = self.store.clone();
        let name = object_name(recording_id, seq);
        self.runtime.run(async move {
            let mut object = match store.get(name.as_str()).await {
                Ok(object) => object,
                Err(e) if e.kind() == GetErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(unavailable(format!("reading {name}: {e}"))),
            };
            let mut bytes = Vec::with_capacity(object.info().size);
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| unavailable(format!("reading {name}: {e}")))?;
            Ok(Some(bytes))
        })
    }

    /// Whether chunk `seq` is stored.
    pub fn contains(&self, recording_id: Uuid, seq: u64) -> Result<bool, StoreError> {
        let store = self.store.clone();
        let name = object_name(recording_id, seq);
        self.runtime.run(async move { exists(&store, &name).await })
    }

    /// Removes chunk `seq` (its data; a deletion marker with its name
    /// stays). Missing is fine.
    pub fn delete(&self, recording_id: Uuid, seq: u64) -> Result<(), StoreError> {
        let store = self.store.clone();
        let name = object_name(recording_id, seq);
        self.runtime.run(async move { delete(&store, &name).await })
    }

    /// Removes every chunk of a recording whose stored seqs are never
    /// more than `max_gap` apart counting from 0 (the log allows a chunk
    /// at most that far past the first one missing): seqs are tried from
    /// 0 until `max_gap + 1` in a row are absent. Missing is fine.
    pub fn delete_recording(&self, recording_id: Uuid, max_gap: u64) -> Result<(), StoreError> {
        let store = self.store.clone();
        self.runtime.run(async move {
            let (mut seq, mut absent) = (0u64, 0u64);
            while absent <= max_gap {
                let name = object_name(recording_id, seq);
                if exists(&store, &name).await? {
                    delete(&store, &name).await?;
                    absent = 0;
                } else {
                    absent += 1;
                }
                seq += 1;
            }
            Ok(())
        })
    }
}

async fn exists(store: &ObjectStore, name: &str) -> Result<bool, StoreError> {
    match store.info(name).await {
        Ok(info) => Ok(!info.deleted),
        Err(e) if e.kind() == InfoErrorKind::NotFound => Ok(false),
        Err(e) => Err(unavailable(format!("looking up {name}: {e}"))),
    }
}

async fn delete(store: &ObjectStore, name: &str) -> Result<(), StoreError> {
    match store.delete(name).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == DeleteErrorKind::NotFound => Ok(()),
        Err(e) => Err(unavailable(format!("deleting {name}: {e}"))),
    }
}
