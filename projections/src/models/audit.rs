//! The admin audit trail: every admin action with who, what, target, when
//! and log position. Which events are admin actions, and their category,
//! action and target, is the domain's [`classify`]; the actor and the time
//! come from the envelope.
//!
//! | key | value |
//! |---|---|
//! | `e/` position desc | [`AuditRow`] |
//! | `c/` category, position desc | - |
//! | `a/` actor label (lowercase), position desc | - |
//! | `s/` site, position desc | - |
//!
//! Newest first; the cursor is the position. Time bounds are checked on
//! the rows of the walked index.

use serde::{Deserialize, Serialize};
use srs_domain::actor::Actor;
use srs_domain::log::Envelope;
use srs_domain::model::{classify, AuditCategory, DomainEvent};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{
    cursor_decode, cursor_encode, get, merged, norm, page_size, SuffixBounds, TreeRef,
};
use crate::codec::{self, Key};
use crate::engine::{Projection, Writes};
use crate::error::Result;

/// One admin-log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub position: u64,
    pub at: Timestamp,
    pub actor: Actor,
    pub category: AuditCategory,
    /// A stable dotted name, e.g. `policy.activated`.
    pub action: String,
    /// `kind:<id>`.
    pub target: String,
    pub site_id: Option<Uuid>,
    pub detail: String,
    pub event_type: String,
    pub event_id: Uuid,
    pub correlation_id: Uuid,
}

/// What `auditTrail(filter)` filters by; every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Any of these (empty: all).
    pub categories: Vec<AuditCategory>,
    /// An actor label (`principal:ann`, `agent:<id>`, `system:retention`)
    /// or a bare principal name, case-insensitive.
    pub actor: Option<String>,
    pub site_id: Option<Uuid>,
    pub target: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// A page of entries, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditPage {
    pub items: Vec<(String, AuditRow)>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

fn category_code(c: AuditCategory) -> u8 {
    match c {
        AuditCategory::Configuration => 0,
        AuditCategory::RecordingReason => 1,
        AuditCategory::Playback => 2,
        AuditCategory::Access => 3,
    }
}

fn actor_keys(actor: &Actor) -> Vec<String> {
    let mut keys = vec![norm(&actor.label())];
    if let Actor::Principal { name, .. } = actor {
        keys.push(norm(name));
    }
    keys
}

/// The projection that maintains [`AuditTrail`].
pub struct AuditProjection;

impl AuditProjection {
    pub const NAME: &'static str = "audit";
}

impl Projection<DomainEvent> for AuditProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, w: &mut Writes, e: &Envelope<DomainEvent>) -> Result<()> {
        let Some(entry) = classify(&e.payload) else {
            return Ok(());
        };
        let pos = e.position;
        w.insert(
            Key::new(b"c/")
                .u8(category_code(entry.category))
                .u64_desc(pos)
                .build(),
            Vec::new(),
        )?;
        for actor in actor_keys(&e.actor) {
            w.insert(
                Key::new(b"a/").str(&actor).u64_desc(pos).build(),
                Vec::new(),
            )?;
        }
        if let Some(site) = entry.site_id {
            w.insert(Key::new(b"s/").uuid(site).u64_desc(pos).build(), Vec::new())?;
        }
        w.put_value(
            Key::new(b"e/").u64_desc(pos).build(),
            &AuditRow {
                position: pos,
                at: e.recorded_at,
                actor: e.actor.clone(),
                category: entry.category,
                action: entry.action.to_string(),
                target: entry.target,
                site_id: entry.site_id,
                detail: entry.detail,
                event_type: e.payload.name().to_string(),
                event_id: e.event_id,
                correlation_id: e.correlation_id,
            },
        )
    }
}

/// Queries over the admin log.
#[derive(Clone, Debug)]
pub struct AuditTrail {
    tree: TreeRef,
}

impl AuditTrail {
    pub fn new(tree: TreeRef) -> Self {
        AuditTrail { tree }
    }

    pub fn entry(&self, position: u64) -> Result<Option<AuditRow>> {
        get(&self.tree, &Key::new(b"e/").u64_desc(position).build())
    }

    /// A page of entries matching `filter`, newest first, after `after`.
    pub fn search(
        &self,
        filter: &AuditFilter,
        first: Option<usize>,
        after: Option<&str>,
    ) -> Result<AuditPage> {
        let limit = page_size(first);
        let after = after
            .map(|c| cursor_decode("a", c))
            .transpose()?
            .and_then(|b| codec::u64_from_key(&b));
        // Walk the most specific index; single-valued filters first.
        let prefixes: Vec<Vec<u8>> = if let Some(actor) = &filter.actor {
            vec![Key::new(b"a/").str(&norm(actor)).build()]
        } else if let Some(site) = filter.site_id {
            vec![Key::new(b"s/").uuid(site).build()]
        } else if !filter.categories.is_empty() {
            filter
                .categories
                .iter()
                .map(|c| Key::new(b"c/").u8(category_code(*c)).build())
                .collect()
        } else {
            vec![b"e/".to_vec()]
        };
        let after = after.map(codec::u64_desc_key);
        let mut items = Vec::new();
        let mut has_next_page = false;
        for suffix in merged(
            &self.tree,
            &prefixes,
            after.as_ref().map(|a| &a[..]),
            &SuffixBounds::default(),
        ) {
            let pos = codec::u64_from_desc_key(&suffix?).unwrap_or(0);
            let Some(row) = self.entry(pos)? else {
                continue;
            };
            if !matches(filter, &row) {
                continue;
            }
            if items.len() == limit {
                has_next_page = true;
                break;
            }
            items.push((cursor_encode("a", &pos.to_be_bytes()), row));
        }
        let end_cursor = items.last().map(|(c, _)| c.clone());
        Ok(AuditPage {
            items,
            has_next_page,
            end_cursor,
        })
    }
}

fn matches(f: &AuditFilter, row: &AuditRow) -> bool {
    (f.categories.is_empty() || f.categories.contains(&row.category))
        && f.actor
            .as_ref()
            .is_none_or(|a| actor_keys(&row.actor).contains(&norm(a)))
        && f.site_id.is_none_or(|s| row.site_id == Some(s))
        && f.target
            .as_ref()
            .is_none_or(|t| row.target.eq_ignore_ascii_case(t.trim()))
        && f.from.is_none_or(|from| row.at >= from)
        && f.to.is_none_or(|to| row.at < to)
}
