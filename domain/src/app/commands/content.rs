//! The commands of a recording's content: its target and its chunks.

use uuid::Uuid;

use crate::app::error::AppError;
use crate::app::service::{Executed, Loaded, Service};
use crate::model::{Lifecycle, Principal, Recording, RecordingCommand};

/// What a recording's content target is: the recording and its server's
/// content limit.
#[derive(Clone, Debug)]
pub struct ContentTarget {
    pub recording: Loaded<Recording>,
    /// The server's `maxFileSizeMb`.
    pub max_file_size_mb: u32,
}

impl Service {
    // ---- content ------------------------------------------------------------

    /// The recording an upload of content is for, once `by` may ingest for
    /// its server (its AGENT), with the server's content limit. An id `by`
    /// may not see is `NOT_FOUND` (absent and deleted alike); a deleted
    /// recording is `NOT_FOUND` for its agent too: its content is gone for
    /// good.
    pub async fn content_target(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<ContentTarget, AppError> {
        let (recording, facts) = self.ingest_target(by, recording_id).await?;
        if recording.state.lifecycle == Lifecycle::Deleted {
            return Err(AppError::NotFound(format!(
                "recording {recording_id} was deleted; its content is destroyed"
            )));
        }
        let (server, _) = self.server(facts.server_id).await?;
        Ok(ContentTarget {
            recording,
            max_file_size_mb: server.state.settings.max_file_size_mb,
        })
    }

    /// Records that chunk `seq` (encrypted, hashing to `sha256`) is in the
    /// content store. Call only once the chunk is durably written there,
    /// after [`Service::content_target`]. The content rules
    /// ([`Recording::check_new_chunk`]) are checked again here, on the
    /// recording as the append finds it.
    pub async fn store_content_chunk(
        &self,
        by: &Principal,
        recording_id: Uuid,
        seq: u64,
        size: u64,
        sha256: String,
        content_type: Option<String>,
    ) -> Result<Executed, AppError> {
        let target = self.content_target(by, recording_id).await?;
        let command = RecordingCommand::StoreChunk {
            seq,
            size,
            sha256,
            content_type,
            max_file_size_mb: target.max_file_size_mb,
        };
        self.execute::<Recording>(recording_id, command, &by.actor(), None)
            .await
    }
}
