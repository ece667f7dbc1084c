//! Random valid event sequences: a script of small numbers interpreted by
//! a state machine that only emits events the domain could have decided.
#![allow(dead_code)]

use std::collections::BTreeMap;

use srs_domain::actor::Actor;
use srs_domain::model::{
    default_policy, DomainEvent, PlaybackKind, PolicyBody, PolicyKind, RecordingAction,
    RecordingPolicyBody, ResponseAction, RetentionPolicy, Role, SessionEventData, SessionEventType,
    Severity, TimeOfDay,
};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use crate::fixtures::*;

/// One scripted step; its numbers pick what happens and to what.
pub type Op = (u8, u8, u8, u16);

const USERS: [&str; 4] = ["CORP\\alice", "CORP\\bob", "carol@corp", "CORP\\dave"];
const HOSTS: [&str; 3] = ["VDA-01", "VDA-02", "vda-03"];
const APPS: [&str; 4] = ["cmd.exe", "outlook.exe", "Desktop", "excel.exe"];
const SITES: [Uuid; 2] = [SITE, SITE2];
const SERVERS: [Uuid; 2] = [SERVER, SERVER2];

#[derive(Default)]
struct World {
    recs: Vec<(Rec, u8)>, // 0 live, 1 ended, 2 archived, 3 deleted
    restricted: BTreeMap<usize, bool>,
    comments: Vec<(usize, Uuid)>,
    permissions: Vec<(Uuid, Uuid)>,
    tokens: Vec<Uuid>,
    policies: Vec<(Uuid, Uuid)>,
    responses: Vec<(usize, Uuid)>,
    servers_connected: bool,
    offline: [bool; 2],
    n: u128,
    clock: i64,
}

impl World {
    fn next(&mut self) -> u128 {
        self.n += 1;
        self.n
    }
}

fn pick<T: Copy>(items: &[T], i: u8) -> T {
    items[i as usize % items.len()]
}

/// The events of a script, each with its actor.
pub fn events(ops: &[Op]) -> Vec<(Actor, DomainEvent)> {
    let mut w = World::default();
    let mut out: Vec<(Actor, DomainEvent)> = Vec::new();
    let admin = admin();
    for (site, server) in SITES.iter().zip(SERVERS) {
        out.push((
            admin.clone(),
            DomainEvent::SiteCreated {
                site_id: *site,
                name: format!("site {site}"),
                at: T0,
            },
        ));
        out.push((
            admin.clone(),
            server_connected(server, *site, &format!("{:064x}", server.as_u128())),
        ));
    }
    w.servers_connected = true;
    for &(kind, a, b, c) in ops {
        w.clock += 30;
        let now = T0.plus_secs(w.clock);
        let rec_idx = |w: &World| (!w.recs.is_empty()).then(|| (a as usize) % w.recs.len());
        let agent = |rec: &Rec| Actor::Agent {
            server_id: rec.server,
        };
        match kind % 16 {
            0 | 1 => {
                let n = w.next();
                let site_i = b as usize % 2;
                let r = Rec {
                    site: SITES[site_i],
                    server: SERVERS[site_i],
                    user: pick(&USERS, a).into(),
                    host: pick(&HOSTS, b / 2).into(),
                    ip: (c % 3 != 0).then(|| format!("10.0.0.{}", c % 5)),
                    dg: (c % 2 == 0).then(|| "Trading".into()),
                    apps: vec![pick(&APPS, (c / 7) as u8).into()],
                    at: now,
                    ..Rec::new(n)
                };
                out.push((agent(&r), r.started()));
                w.recs.push((r, 0));
            }
            2 | 3 => {
                if let Some(i) = rec_idx(&w).filter(|i| w.recs[*i].1 == 0) {
                    let r = w.recs[i].0.clone();
                    let n = w.next();
                    let t = pick(
                        &[
                            SessionEventType::AppStart,
                            SessionEventType::WebBrowsing,
                            SessionEventType::Idle,
                        ],
                        b,
                    );
                    let data = match t {
                        SessionEventType::AppStart => SessionEventData::App {
                            app: pick(&APPS, b).into(),
                            pid: None,
                            title: None,
                            detail: None,
                        },
                        SessionEventType::Idle => SessionEventData::Idle {
                            seconds: u64::from(c % 100),
                        },
                        _ => SessionEventData::Web {
                            url: "https://example.com/x".into(),
                            browser: None,
                            title: None,
                        },
                    };
                    let offset = u64::from(c) * 100;
                    out.push((agent(&r), r.event(n, t, offset, data)));
                    if b % 3 == 0 {
                        let sev = pick(&Severity::ALL, c as u8);
                        out.push((
                            agent(&r),
                            r.detected(n, t, sev, pick(&["shell", "web", "idle"], b), offset),
                        ));
                        if b % 2 == 0 {
                            let id = Uuid::from_u128(0x7000_0000 + n);
                            out.push((
                                agent(&r),
                                DomainEvent::ResponseTriggered {
                                    response_id: id,
                                    recording_id: r.id,
                                    site_id: r.site,
                                    server_id: r.server,
                                    session_id: r.session.clone(),
                                    user: r.user.clone(),
                                    host: r.host.clone(),
                                    policy_id: Uuid::from_u128(0x7e5),
                                    rule: "lock".into(),
                                    trigger: "detection".into(),
                                    action: ResponseAction::LockSession {
                                        message: "locked".into(),
                                    },
                                    detection_id: Some(Uuid::from_u128(0xd000_0000 + n)),
                                    event_type: Some(t),
                                    severity: Some(sev),
                                    at_offset_ms: offset,
                                    at: now,
                                },
                            ));
                            w.responses.push((i, id));
                        }
                    }
                }
            }
            4 => {
                if let Some(i) = rec_idx(&w).filter(|i| w.recs[*i].1 == 0) {
                    let r = w.recs[i].0.clone();
                    out.push((agent(&r), r.chunk(u64::from(c), u64::from(c) * 1000 + 1)));
                    out.push((
                        agent(&r),
                        r.ended_after_secs(w.clock - (r.at.as_secs() - T0.as_secs()) + 1),
                    ));
                    w.recs[i].1 = 1;
                }
            }
            5 => {
                if let Some(i) = rec_idx(&w).filter(|i| matches!(w.recs[*i].1, 1 | 2)) {
                    let r = w.recs[i].0.clone();
                    let on = w.restricted.get(&i).copied().unwrap_or(false);
                    let ev = if on {
                        DomainEvent::RecordingRestrictionRemoved {
                            recording_id: r.id,
                            site_id: r.site,
                            reason: "ok".into(),
                            by: "root".into(),
                            at: now,
                        }
                    } else {
                        r.restricted("root", "hold", now)
                    };
                    out.push((admin.clone(), ev));
                    w.restricted.insert(i, !on);
                }
            }
            6 => {
                if let Some(i) = rec_idx(&w).filter(|i| w.recs[*i].1 != 3) {
                    let r = w.recs[i].0.clone();
                    let id = Uuid::from_u128(0xc000_0000 + w.next());
                    out.push((
                        admin.clone(),
                        r.commented(id, pick(&["look", "Suspicious file copy", "ok"], b)),
                    ));
                    w.comments.push((i, id));
                }
            }
            7 => {
                if !w.comments.is_empty() {
                    let (i, id) = w.comments.remove(a as usize % w.comments.len());
                    let r = &w.recs[i].0;
                    out.push((
                        admin.clone(),
                        DomainEvent::CommentDeleted {
                            comment_id: id,
                            recording_id: r.id,
                            site_id: r.site,
                            by: "root".into(),
                            at: now,
                        },
                    ));
                }
            }
            8 => {
                if let Some(i) = rec_idx(&w).filter(|i| matches!(w.recs[*i].1, 1 | 2)) {
                    let r = w.recs[i].0.clone();
                    let (ev, state) = match (w.recs[i].1, b % 3) {
                        (_, 0) => (r.deleted(), 3),
                        (1, _) => (r.archived(), 2),
                        _ => (
                            DomainEvent::RecordingRestored {
                                recording_id: r.id,
                                site_id: r.site,
                                at: now,
                            },
                            1,
                        ),
                    };
                    out.push((Actor::system("retention"), ev));
                    w.recs[i].1 = state;
                }
            }
            9 => {
                if let Some(i) = rec_idx(&w).filter(|i| w.recs[*i].1 != 3) {
                    let r = &w.recs[i].0;
                    out.push((
                        admin.clone(),
                        DomainEvent::RecordingPlayed {
                            recording_id: r.id,
                            site_id: r.site,
                            by: "root".into(),
                            kind: PlaybackKind::Play,
                            at: now,
                        },
                    ));
                }
            }
            10 => {
                if b % 2 == 0 || w.permissions.is_empty() {
                    let id = Uuid::from_u128(0x9000_0000 + w.next());
                    let site = pick(&SITES, a);
                    out.push((
                        admin.clone(),
                        DomainEvent::PlaybackPermissionGranted {
                            permission_id: id,
                            site_id: site,
                            principal: "ann".into(),
                            scope: Default::default(),
                            at: now,
                        },
                    ));
                    w.permissions.push((id, site));
                } else {
                    let (id, site) = w.permissions.remove(a as usize % w.permissions.len());
                    out.push((
                        admin.clone(),
                        DomainEvent::PlaybackPermissionRevoked {
                            permission_id: id,
                            site_id: site,
                            principal: "ann".into(),
                            at: now,
                        },
                    ));
                }
            }
            11 => {
                let s = (a % 2) as usize;
                let ev = if w.offline[s] {
                    DomainEvent::ServerCameOnline {
                        server_id: SERVERS[s],
                        site_id: SITES[s],
                        at: now,
                    }
                } else {
                    DomainEvent::ServerWentOffline {
                        server_id: SERVERS[s],
                        site_id: SITES[s],
                        last_heartbeat: now,
                        at: now,
                    }
                };
                w.offline[s] = !w.offline[s];
                out.push((Actor::system("liveness"), ev));
            }
            12 => {
                if b % 2 == 0 || w.tokens.is_empty() {
                    let id = Uuid::from_u128(0x7100_0000 + w.next());
                    out.push((
                        admin.clone(),
                        DomainEvent::TokenIssued {
                            token_id: id,
                            name: format!("user{}", id.as_u128() % 100),
                            role: pick(&[Role::Admin, Role::Auditor, Role::Viewer], c as u8),
                            site_ids: Default::default(),
                            groups: vec![],
                            secret_sha256: format!("{:064x}", id.as_u128()),
                            at: now,
                        },
                    ));
                    w.tokens.push(id);
                } else {
                    let id = w.tokens[a as usize % w.tokens.len()];
                    out.push((
                        admin.clone(),
                        DomainEvent::TokenRevoked {
                            token_id: id,
                            name: "x".into(),
                            at: now,
                        },
                    ));
                }
            }
            13 => {
                let site = pick(&SITES, a);
                let id = Uuid::from_u128(0x9100_0000 + w.next());
                let body = PolicyBody::Recording(RecordingPolicyBody {
                    rules: vec![],
                    fallback: RecordingAction::RecordScreenAndEvents,
                    fallback_notify: false,
                });
                out.push((
                    admin.clone(),
                    DomainEvent::PolicyCreated {
                        policy_id: id,
                        site_id: site,
                        kind: PolicyKind::Recording,
                        name: format!("p{c}"),
                        body,
                        at: now,
                    },
                ));
                if b % 2 == 0 {
                    out.push((
                        admin.clone(),
                        DomainEvent::PolicyActivated {
                            site_id: site,
                            kind: PolicyKind::Recording,
                            policy_id: id,
                            policy_name: format!("p{c}"),
                            previous_policy_id: default_policy(PolicyKind::Recording),
                            at: now,
                        },
                    ));
                }
                w.policies.push((id, site));
            }
            14 => {
                if !w.responses.is_empty() {
                    let (i, id) = w.responses.remove(a as usize % w.responses.len());
                    let r = w.recs[i].0.clone();
                    out.push((
                        agent(&r),
                        DomainEvent::ResponseDelivered {
                            response_id: id,
                            recording_id: r.id,
                            site_id: r.site,
                            server_id: r.server,
                            outcome: "done".into(),
                            at: now,
                        },
                    ));
                }
            }
            _ => {
                out.push((
                    admin.clone(),
                    DomainEvent::RetentionPolicySet {
                        site_id: pick(&SITES, a),
                        policy: RetentionPolicy {
                            archive_after_days: Some(2 + u32::from(b % 3)),
                            delete_after_days: Some(10 + u32::from(c % 5)),
                            run_at: TimeOfDay { hour: 1, minute: 0 },
                            exclude_restricted: b % 2 == 0,
                        },
                        at: now,
                    },
                ));
            }
        }
    }
    let _ = Timestamp::EPOCH;
    out
}

/// A random script of `n` steps.
pub fn random_ops(rng: &mut impl rand::Rng, n: usize) -> Vec<Op> {
    (0..n)
        .map(|_| (rng.gen(), rng.gen(), rng.gen(), rng.gen()))
        .collect()
}
