//! Comments on recordings.
//!
//! | key | value |
//! |---|---|
//! | `c/` recording, position, comment id | [`CommentRow`] |
//! | `i/` comment id | the `c/` key |

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{CommentSeverity, DomainEvent};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{get, values, TreeRef};
use crate::codec::Key;
use crate::engine::{Overlay, Projection};
use crate::error::Result;
use crate::store::Keyspace;

/// A comment as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentRow {
    pub id: Uuid,
    pub recording_id: Uuid,
    pub site_id: Uuid,
    pub author: String,
    pub text: String,
    pub severity: CommentSeverity,
    pub offset_ms: Option<u64>,
    pub at: Timestamp,
    pub position: u64,
}

fn index_key(id: Uuid) -> Vec<u8> {
    Key::new(b"i/").uuid(id).build()
}

/// The projection that maintains [`Comments`].
pub struct CommentsProjection;

impl CommentsProjection {
    pub const NAME: &'static str = "comments";
}

impl Projection<DomainEvent> for CommentsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        match &e.payload {
            DomainEvent::CommentAdded {
                comment_id,
                recording_id,
                site_id,
                author,
                text,
                severity,
                offset_ms,
                at,
            } => {
                let key = Key::new(b"c/")
                    .uuid(*recording_id)
                    .u64(e.position)
                    .uuid(*comment_id)
                    .build();
                w.insert(index_key(*comment_id), key.clone())?;
                w.put_value(
                    key,
                    &CommentRow {
                        id: *comment_id,
                        recording_id: *recording_id,
                        site_id: *site_id,
                        author: author.clone(),
                        text: text.clone(),
                        severity: *severity,
                        offset_ms: *offset_ms,
                        at: *at,
                        position: e.position,
                    },
                )
            }
            DomainEvent::CommentDeleted { comment_id, .. } => {
                if let Some(key) = w.get(&index_key(*comment_id))? {
                    w.remove(key)?;
                    w.remove(index_key(*comment_id))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Queries over comments.
#[derive(Clone, Debug)]
pub struct Comments {
    tree: TreeRef,
}

impl Comments {
    pub fn new(tree: TreeRef) -> Self {
        Comments { tree }
    }

    /// A recording's comments, oldest first.
    pub fn for_recording(&self, recording: Uuid) -> Result<Vec<CommentRow>> {
        values(&self.tree, &Key::new(b"c/").uuid(recording).build())
    }

    pub fn get(&self, id: Uuid) -> Result<Option<CommentRow>> {
        match self.tree.get(index_key(id))? {
            Some(key) => get(&self.tree, &key),
            None => Ok(None),
        }
    }
}
