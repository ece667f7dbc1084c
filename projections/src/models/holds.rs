//! Legal holds: every hold with its state, by id and by site, for the
//! `legalHolds` query and the `Recording.onLegalHold` / `legalHolds`
//! fields. Whether a hold covers a recording is the domain's one rule
//! ([`LegalHold::covers`]), applied to the row's hold as stored.
//!
//! The write side does not read this model: deletions decide on the
//! `legal-holds` stream itself (see `srs_domain::model::hold`), so a read
//! model that lags never lets a held recording be deleted.
//!
//! | key | value |
//! |---|---|
//! | `h/` hold id | [`HoldRow`] |
//! | `s/` site id, hold id | empty (the site's holds) |

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{DomainEvent, HoldRelease, LegalHold, RecordingFacts};
use uuid::Uuid;

use super::util::{get, trailing_uuid, values, TreeRef};
use crate::codec::Key;
use crate::engine::{Overlay, Projection};
use crate::error::Result;
use crate::store::Keyspace;

/// A legal hold as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRow {
    pub hold: LegalHold,
    /// The log position of `LegalHoldPlaced`.
    pub placed_position: u64,
    /// The log position of `LegalHoldReleased`, once released.
    pub released_position: Option<u64>,
}

impl HoldRow {
    pub fn active(&self) -> bool {
        self.hold.active()
    }

    /// Whether the hold, active, covers `recording`.
    pub fn covers(&self, recording: &RecordingFacts) -> bool {
        self.hold.covers(recording)
    }
}

fn hold_key(id: Uuid) -> Vec<u8> {
    Key::new(b"h/").uuid(id).build()
}

fn site_prefix(site: Uuid) -> Vec<u8> {
    Key::new(b"s/").uuid(site).build()
}

/// The projection that maintains [`Holds`].
pub struct HoldsProjection;

impl HoldsProjection {
    pub const NAME: &'static str = "legal-holds";
}

impl Projection<DomainEvent> for HoldsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        match &e.payload {
            DomainEvent::LegalHoldPlaced {
                hold_id,
                site_id,
                scope,
                reason,
                by,
                at,
            } => {
                w.insert(
                    Key::new(b"s/").uuid(*site_id).uuid(*hold_id).build(),
                    Vec::new(),
                )?;
                w.put_value(
                    hold_key(*hold_id),
                    &HoldRow {
                        hold: LegalHold {
                            id: *hold_id,
                            site_id: *site_id,
                            scope: scope.clone(),
                            reason: reason.clone(),
                            placed_by: by.clone(),
                            placed_at: *at,
                            released: None,
                        },
                        placed_position: e.position,
                        released_position: None,
                    },
                )
            }
            DomainEvent::LegalHoldReleased {
                hold_id,
                reason,
                by,
                at,
                ..
            } => {
                if let Some(mut row) = w.get_value::<HoldRow>(&hold_key(*hold_id))? {
                    row.hold.released = Some(HoldRelease {
                        reason: reason.clone(),
                        by: by.clone(),
                        at: *at,
                    });
                    row.released_position = Some(e.position);
                    w.put_value(hold_key(*hold_id), &row)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Queries over legal holds.
#[derive(Clone, Debug)]
pub struct Holds {
    tree: TreeRef,
}

impl Holds {
    pub fn new(tree: TreeRef) -> Self {
        Holds { tree }
    }

    pub fn get(&self, id: Uuid) -> Result<Option<HoldRow>> {
        get(&self.tree, &hold_key(id))
    }

    /// The holds of one site (`None`: of every site), oldest first;
    /// `active` keeps only active (`Some(true)`) or released
    /// (`Some(false)`) ones.
    pub fn list(&self, site: Option<Uuid>, active: Option<bool>) -> Result<Vec<HoldRow>> {
        let rows: Vec<HoldRow> = match site {
            None => values(&self.tree, b"h/")?,
            Some(site) => {
                let mut rows = Vec::new();
                for kv in self.tree.scan_prefix(site_prefix(site)) {
                    let (key, _) = kv?;
                    if let Some(row) = self.get(trailing_uuid(&key)?)? {
                        rows.push(row);
                    }
                }
                rows
            }
        };
        Ok(rows
            .into_iter()
            .filter(|row| active.is_none_or(|a| row.active() == a))
            .collect())
    }

    /// The active holds covering `recording`, oldest first.
    pub fn holding(&self, recording: &RecordingFacts) -> Result<Vec<HoldRow>> {
        Ok(self
            .list(Some(recording.site_id), Some(true))?
            .into_iter()
            .filter(|row| row.covers(recording))
            .collect())
    }
}
