//! Domain events for read-model tests: small builders, not copied JSON.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use srs_domain::actor::Actor;
use srs_domain::log::{Envelope, Hash};
use srs_domain::model::testing::fixtures::{decision, CREDENTIAL};
use srs_domain::model::{
    Deployment, DomainEvent, Principal, RecordingAction, RecordingMode, Role, SessionEvent,
    SessionEventData, SessionEventType, Severity,
};
use srs_domain::time::Timestamp;
use srs_projections::models::{
    all_projections, Access, AuditTrail, Catalogue, Comments, DashboardReader, Detections, Holds,
    Policies, Servers, Tokens,
};
use srs_projections::store::{Db, Store, Tree};
use srs_projections::{apply_events, Projection};
use uuid::Uuid;

pub use srs_domain::model::testing::fixtures::{SITE, T0};

pub const SITE2: Uuid = Uuid::from_u128(0x5174);
pub const SERVER: Uuid = Uuid::from_u128(0x5e7e);
pub const SERVER2: Uuid = Uuid::from_u128(0x5e7f);

pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(0xabc0_0000 + n)
}

pub fn at_min(minutes: i64) -> Timestamp {
    T0.plus_secs(minutes * 60)
}

/// A recording's start, with defaults meant to be overridden.
#[derive(Clone, Debug)]
pub struct Rec {
    pub id: Uuid,
    pub site: Uuid,
    pub server: Uuid,
    pub session: String,
    pub part: u32,
    pub user: String,
    pub groups: Vec<String>,
    pub host: String,
    pub ip: Option<String>,
    pub client: Option<String>,
    pub dg: Option<String>,
    pub apps: Vec<String>,
    pub at: Timestamp,
}

impl Rec {
    pub fn new(n: u128) -> Self {
        Rec {
            id: id(n),
            site: SITE,
            server: SERVER,
            session: format!("s{n}"),
            part: 1,
            user: "CORP\\alice".into(),
            groups: vec!["CORP\\Finance".into()],
            host: "VDA-01".into(),
            ip: Some("10.0.0.1".into()),
            client: Some("ALICE-PC".into()),
            dg: Some("Trading".into()),
            apps: vec!["Desktop".into()],
            at: at_min(n as i64),
        }
    }

    pub fn started(&self) -> DomainEvent {
        DomainEvent::RecordingStarted {
            recording_id: self.id,
            site_id: self.site,
            server_id: self.server,
            session_id: self.session.clone(),
            part: self.part,
            previous_recording_id: None,
            user: self.user.clone(),
            domain: Some("CORP".into()),
            groups: self.groups.clone(),
            client_name: self.client.clone(),
            client_ip: self.ip.clone(),
            host: self.host.clone(),
            delivery_group: self.dg.clone(),
            applications: self.apps.clone(),
            mode: RecordingMode::ScreenAndEvents,
            decision: decision(RecordingAction::RecordScreenAndEvents),
            started_at: self.at,
        }
    }

    pub fn ended_after_secs(&self, secs: i64) -> DomainEvent {
        DomainEvent::RecordingEnded {
            recording_id: self.id,
            site_id: self.site,
            server_id: self.server,
            ended_at: self.at.plus_secs(secs),
        }
    }

    pub fn event(
        &self,
        n: u128,
        t: SessionEventType,
        offset_ms: u64,
        data: SessionEventData,
    ) -> DomainEvent {
        DomainEvent::SessionEventRecorded {
            recording_id: self.id,
            site_id: self.site,
            event: SessionEvent {
                event_id: Uuid::from_u128(0xe000_0000 + n),
                event_type: t,
                offset_ms,
                data,
            },
        }
    }

    pub fn app_started(&self, n: u128, app: &str, offset_ms: u64) -> DomainEvent {
        self.event(
            n,
            SessionEventType::AppStart,
            offset_ms,
            SessionEventData::App {
                app: app.into(),
                pid: None,
                title: None,
                detail: None,
            },
        )
    }

    pub fn detected(
        &self,
        n: u128,
        t: SessionEventType,
        severity: Severity,
        rule: &str,
        offset_ms: u64,
    ) -> DomainEvent {
        DomainEvent::EventDetected {
            detection_id: Uuid::from_u128(0xd000_0000 + n),
            recording_id: self.id,
            site_id: self.site,
            server_id: self.server,
            user: self.user.clone(),
            host: self.host.clone(),
            event_id: Uuid::from_u128(0xe000_0000 + n),
            event_type: t,
            severity,
            rule: rule.into(),
            policy_id: Uuid::from_u128(0xde7),
            subject: None,
            at_offset_ms: offset_ms,
        }
    }

    pub fn restricted(&self, by: &str, reason: &str, at: Timestamp) -> DomainEvent {
        DomainEvent::RecordingRestricted {
            recording_id: self.id,
            site_id: self.site,
            reason: reason.into(),
            by: by.into(),
            at,
        }
    }

    pub fn chunk(&self, seq: u64, size: u64) -> DomainEvent {
        DomainEvent::ContentChunkStored {
            recording_id: self.id,
            site_id: self.site,
            seq,
            size,
            sha256: CREDENTIAL.into(),
        }
    }

    pub fn commented(&self, comment: Uuid, text: &str) -> DomainEvent {
        DomainEvent::CommentAdded {
            comment_id: comment,
            recording_id: self.id,
            site_id: self.site,
            author: "bob".into(),
            text: text.into(),
            severity: Default::default(),
            offset_ms: Some(5),
            at: self.at,
        }
    }

    pub fn archived(&self) -> DomainEvent {
        DomainEvent::RecordingArchived {
            recording_id: self.id,
            site_id: self.site,
            at: self.at,
        }
    }

    pub fn deleted(&self) -> DomainEvent {
        DomainEvent::RecordingDeleted {
            recording_id: self.id,
            site_id: self.site,
            at: self.at,
        }
    }
}

pub fn server_connected(server: Uuid, site: Uuid, sha: &str) -> DomainEvent {
    DomainEvent::ServerConnected {
        server_id: server,
        site_id: site,
        name: "SR".into(),
        host: "sr.corp".into(),
        deployment: Deployment::OnPremises,
        version: "2411".into(),
        credential_sha256: sha.into(),
        at: T0,
    }
}

pub fn admin() -> Actor {
    Actor::Principal {
        token_id: Uuid::from_u128(1),
        name: "root".into(),
    }
}

pub fn principal(role: Role, name: &str) -> Principal {
    srs_domain::model::testing::fixtures::principal(role, name)
}

/// Read models folded straight from events (no log, no runner).
pub struct Folded {
    _db: Db,
    trees: BTreeMap<&'static str, Arc<Tree>>,
    projections: Vec<Arc<dyn Projection<DomainEvent>>>,
    position: u64,
}

impl Folded {
    pub fn new() -> Self {
        let db = Db::temporary().unwrap();
        let projections = all_projections();
        let trees = projections
            .iter()
            .map(|p| (p.name(), Arc::new(db.open(p.name()).unwrap())))
            .collect();
        Folded {
            _db: db,
            trees,
            projections,
            position: 0,
        }
    }

    pub fn given(events: impl IntoIterator<Item = DomainEvent>) -> Self {
        let mut f = Folded::new();
        f.apply(admin(), events);
        f
    }

    /// Applies `events` as `actor`; panics if a projection refuses one.
    pub fn apply(
        &mut self,
        actor: Actor,
        events: impl IntoIterator<Item = DomainEvent>,
    ) -> &mut Self {
        let envelopes = envelopes(&mut self.position, &actor, events);
        for p in &self.projections {
            let tree = &self.trees[p.name()];
            let checkpoint = srs_projections::checkpoint_of(tree).unwrap();
            let applied = apply_events(&**p, tree, checkpoint, &envelopes).unwrap();
            assert!(
                applied.stopped.is_none(),
                "{}: {}",
                p.name(),
                applied.stopped.unwrap()
            );
        }
        self
    }

    pub fn tree(&self, name: &str) -> Arc<Tree> {
        self.trees[name].clone()
    }

    pub fn catalogue(&self) -> Catalogue {
        Catalogue::new(self.tree("catalogue"))
    }
    pub fn access(&self) -> Access {
        Access::new(self.tree("access"))
    }
    pub fn detections(&self) -> Detections {
        Detections::new(self.tree("detections"))
    }
    pub fn dashboard(&self) -> DashboardReader {
        DashboardReader::new(self.tree("dashboard"))
    }
    pub fn servers(&self) -> Servers {
        Servers::new(self.tree("servers"))
    }
    pub fn policies(&self) -> Policies {
        Policies::new(self.tree("policies"))
    }
    pub fn comments(&self) -> Comments {
        Comments::new(self.tree("comments"))
    }
    pub fn audit(&self) -> AuditTrail {
        AuditTrail::new(self.tree("audit"))
    }
    pub fn tokens(&self) -> Tokens {
        Tokens::new(self.tree("tokens"))
    }
    pub fn holds(&self) -> Holds {
        Holds::new(self.tree("legal-holds"))
    }
}

/// `events` as logged by `actor` at the positions after `*position`
/// (advanced), one second apart from [`T0`].
pub fn envelopes(
    position: &mut u64,
    actor: &Actor,
    events: impl IntoIterator<Item = DomainEvent>,
) -> Vec<Envelope<DomainEvent>> {
    events
        .into_iter()
        .map(|payload| {
            *position += 1;
            Envelope {
                position: *position,
                stream: "test".into(),
                version: *position,
                event_id: Uuid::from_u128(0xf000_0000 + *position as u128),
                recorded_at: T0.plus_secs(*position as i64),
                actor: actor.clone(),
                correlation_id: Uuid::nil(),
                causation_id: None,
                payload,
                prev_hash: Hash::GENESIS,
                hash: Hash::GENESIS,
            }
        })
        .collect()
}
