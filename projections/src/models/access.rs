//! Access restrictions: restricted recordings (who, when, why, history),
//! playback permissions per site, and the one decision every query path
//! uses: [`visibility`].
//!
//! | key | value |
//! |---|---|
//! | `x/` recording | [`RestrictionRow`] (currently restricted only) |
//! | `xo/` position desc, recording | - (restricted, newest first) |
//! | `xs/` site, position desc, recording | - |
//! | `xh/` recording, position | [`RestrictionChange`] (history) |
//! | `p/` permission | [`PermissionRow`] (live permissions only) |
//! | `ps/` site, permission | - |
//!
//! The rules themselves are the domain's (`can_view_recording`,
//! `can_play_recording`): a restricted recording is seen only by ADMIN and
//! PRIVILEGED_PLAYER; an AUDITOR sees only the unrestricted recordings of
//! its sites that a playback permission it holds there (by name, group or
//! `token:<id>`) admits, none on a site where it holds none (so revoking a
//! permission never widens what it sees); VIEWER and AGENT see none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{
    can_play_recording, can_view_recording, DomainEvent, PlaybackPermission, PlaybackScope,
    Principal, RecordingFacts,
};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{get, trailing_uuid, values, TreeRef};
use crate::codec::Key;
use crate::engine::{Overlay, Projection};
use crate::error::Result;
use crate::store::Keyspace;

/// What a principal may do with one recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Visibility {
    /// Absent for them: lists leave it out, `recording(id)` answers null.
    Hidden,
    /// They may see it and its metadata but not play it (e.g. an auditor
    /// and an archived recording).
    Listed,
    /// They may also play and download it.
    Playable,
}

impl Visibility {
    pub fn is_visible(self) -> bool {
        self != Visibility::Hidden
    }
}

/// The decision: what `principal`, holding `grants` on the recording's
/// site (see [`Viewer`]), may do with `recording`.
pub fn visibility(
    principal: &Principal,
    recording: &RecordingFacts,
    grants: &[PlaybackScope],
) -> Visibility {
    if !can_view_recording(principal, recording, grants) {
        Visibility::Hidden
    } else if can_play_recording(principal, recording, grants) {
        Visibility::Playable
    } else {
        Visibility::Listed
    }
}

/// A restricted recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictionRow {
    pub recording_id: Uuid,
    pub site_id: Uuid,
    pub reason: String,
    /// The principal who restricted it.
    pub by: String,
    pub at: Timestamp,
    pub position: u64,
}

/// One restriction or its removal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictionChange {
    pub restricted: bool,
    pub reason: String,
    pub by: String,
    pub at: Timestamp,
    pub position: u64,
}

/// A live playback permission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionRow {
    pub id: Uuid,
    pub site_id: Uuid,
    /// A principal name or a group.
    pub principal: String,
    pub scope: PlaybackScope,
    pub granted_at: Timestamp,
    pub granted_by: String,
}

impl PermissionRow {
    fn as_domain(&self) -> PlaybackPermission {
        PlaybackPermission {
            id: Some(self.id),
            site_id: Some(self.site_id),
            principal: self.principal.clone(),
            scope: self.scope.clone(),
            granted_at: Some(self.granted_at),
            revoked: false,
        }
    }
}

fn restriction_key(recording: Uuid) -> Vec<u8> {
    Key::new(b"x/").uuid(recording).build()
}

fn order_keys(row: &RestrictionRow) -> [Vec<u8>; 2] {
    [
        Key::new(b"xo/")
            .u64_desc(row.position)
            .uuid(row.recording_id)
            .build(),
        Key::new(b"xs/")
            .uuid(row.site_id)
            .u64_desc(row.position)
            .uuid(row.recording_id)
            .build(),
    ]
}

fn permission_key(id: Uuid) -> Vec<u8> {
    Key::new(b"p/").uuid(id).build()
}

fn site_permission_key(site: Uuid, id: Uuid) -> Vec<u8> {
    Key::new(b"ps/").uuid(site).uuid(id).build()
}

/// The projection that maintains [`Access`].
pub struct AccessProjection;

impl AccessProjection {
    pub const NAME: &'static str = "access";
}

impl Projection<DomainEvent> for AccessProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        use DomainEvent as E;
        match &e.payload {
            E::RecordingRestricted {
                recording_id,
                site_id,
                reason,
                by,
                at,
            } => {
                if let Some(old) = w.get_value::<RestrictionRow>(&restriction_key(*recording_id))? {
                    for k in order_keys(&old) {
                        w.remove(k)?;
                    }
                }
                let row = RestrictionRow {
                    recording_id: *recording_id,
                    site_id: *site_id,
                    reason: reason.clone(),
                    by: by.clone(),
                    at: *at,
                    position: e.position,
                };
                for k in order_keys(&row) {
                    w.insert(k, Vec::new())?;
                }
                w.put_value(restriction_key(*recording_id), &row)?;
                history(w, *recording_id, true, reason, by, *at, e.position)
            }
            E::RecordingRestrictionRemoved {
                recording_id,
                reason,
                by,
                at,
                ..
            } => {
                if let Some(old) = w.get_value::<RestrictionRow>(&restriction_key(*recording_id))? {
                    for k in order_keys(&old) {
                        w.remove(k)?;
                    }
                    w.remove(restriction_key(*recording_id))?;
                }
                history(w, *recording_id, false, reason, by, *at, e.position)
            }
            E::PlaybackPermissionGranted {
                permission_id,
                site_id,
                principal,
                scope,
                at,
            } => {
                w.insert(site_permission_key(*site_id, *permission_id), Vec::new())?;
                w.put_value(
                    permission_key(*permission_id),
                    &PermissionRow {
                        id: *permission_id,
                        site_id: *site_id,
                        principal: principal.clone(),
                        scope: scope.clone(),
                        granted_at: *at,
                        granted_by: e.actor.label(),
                    },
                )
            }
            E::PlaybackPermissionRevoked {
                permission_id,
                site_id,
                ..
            } => {
                w.remove(site_permission_key(*site_id, *permission_id))?;
                w.remove(permission_key(*permission_id))
            }
            _ => Ok(()),
        }
    }
}

fn history(
    w: &mut Overlay,
    recording: Uuid,
    restricted: bool,
    reason: &str,
    by: &str,
    at: Timestamp,
    position: u64,
) -> Result<()> {
    w.put_value(
        Key::new(b"xh/").uuid(recording).u64(position).build(),
        &RestrictionChange {
            restricted,
            reason: reason.to_string(),
            by: by.to_string(),
            at,
            position,
        },
    )
}

/// Queries over restrictions and permissions.
#[derive(Clone, Debug)]
pub struct Access {
    tree: TreeRef,
}

impl Access {
    pub fn new(tree: TreeRef) -> Self {
        Access { tree }
    }

    /// The restriction of a recording, if it is restricted.
    pub fn restriction(&self, recording: Uuid) -> Result<Option<RestrictionRow>> {
        get(&self.tree, &restriction_key(recording))
    }

    /// Every restriction and removal of a recording, oldest first.
    pub fn restriction_history(&self, recording: Uuid) -> Result<Vec<RestrictionChange>> {
        values(&self.tree, &Key::new(b"xh/").uuid(recording).build())
    }

    /// Restricted recordings, most recently restricted first (one site or all).
    pub fn restricted(&self, site: Option<Uuid>, limit: usize) -> Result<Vec<RestrictionRow>> {
        let prefix = match site {
            Some(s) => Key::new(b"xs/").uuid(s).build(),
            None => b"xo/".to_vec(),
        };
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(&prefix).take(limit) {
            let (k, _) = kv?;
            if let Some(row) = self.restriction(trailing_uuid(&k)?)? {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Live playback permissions of one site, or of all.
    pub fn permissions(&self, site: Option<Uuid>) -> Result<Vec<PermissionRow>> {
        match site {
            None => values(&self.tree, b"p/"),
            Some(site) => {
                let mut out = Vec::new();
                for kv in self.tree.scan_prefix(Key::new(b"ps/").uuid(site).build()) {
                    let (k, _) = kv?;
                    if let Some(row) = get(&self.tree, &permission_key(trailing_uuid(&k)?))? {
                        out.push(row);
                    }
                }
                Ok(out)
            }
        }
    }

    pub fn permission(&self, id: Uuid) -> Result<Option<PermissionRow>> {
        get(&self.tree, &permission_key(id))
    }

    /// The principal with the grants it holds on every site, for one
    /// query's visibility decisions.
    pub fn viewer(&self, principal: &Principal) -> Result<Viewer> {
        let mut grants: BTreeMap<Uuid, Vec<PlaybackScope>> = BTreeMap::new();
        for row in self.permissions(None)? {
            if row.as_domain().held_by(principal) {
                grants.entry(row.site_id).or_default().push(row.scope);
            }
        }
        Ok(Viewer {
            principal: principal.clone(),
            grants,
        })
    }
}

/// A principal with its playback grants: what every query path asks
/// [`Viewer::visibility`].
#[derive(Clone, Debug, PartialEq)]
pub struct Viewer {
    principal: Principal,
    grants: BTreeMap<Uuid, Vec<PlaybackScope>>,
}

impl Viewer {
    /// A viewer with explicit grants (tests, tools).
    pub fn new(principal: Principal, grants: BTreeMap<Uuid, Vec<PlaybackScope>>) -> Self {
        Viewer { principal, grants }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The scopes the principal holds on `site`.
    pub fn grants(&self, site: Uuid) -> &[PlaybackScope] {
        self.grants.get(&site).map_or(&[], Vec::as_slice)
    }

    /// Whether one of the principal's permissions on `site` is a
    /// whole-site one (it admits every recording of the site).
    pub fn holds_whole_site(&self, site: Uuid) -> bool {
        self.grants(site).iter().any(PlaybackScope::is_whole_site)
    }

    /// [`visibility`] for this principal.
    pub fn visibility(&self, recording: &RecordingFacts) -> Visibility {
        visibility(&self.principal, recording, self.grants(recording.site_id))
    }

    /// The sites the principal is limited to (`None`: all).
    pub fn site_scope(&self) -> Option<&std::collections::BTreeSet<Uuid>> {
        (!self.principal.site_ids.is_empty()).then_some(&self.principal.site_ids)
    }
}
