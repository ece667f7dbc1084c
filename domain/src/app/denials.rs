//! Refusals as audit facts, at a cost the caller bears rather than the log.
//!
//! Every refusal (`FORBIDDEN`) is an audit fact, but a caller must not be
//! able to make the log grow at will by asking for what it may not have.
//! Two rules bound what refusals write:
//!
//! - **One fact per request.** Inside a request scope
//!   ([`Service::coalescing_denials`], set by `POST /graphql` around the
//!   execution of one request) refusals are only counted; when the request
//!   has run, the scope writes at most one fact per principal (a request
//!   has one): a plain `AccessDenied` for a single refusal, else one
//!   `AccessDeniedRepeated` naming the first refusal's action, target and
//!   site and carrying `refused`, how many fields and operations were
//!   refused. The fact is durable before the answer is sent. Outside a
//!   scope (content routes, subscriptions, the CLI) each refusal is its
//!   own fact, as before.
//! - **A rate per principal.** At most
//!   [`ServiceConfig::denial_facts_per_minute`] refusal facts per principal
//!   (its token id; a server agent's is its server id) in a window of one
//!   minute, the window opening with the first fact written in it. Past
//!   that, refusals are not written but counted: in the
//!   [`DenialCounts::unrecorded`] metric, and in the `suppressed` field of
//!   the principal's next fact (which is then an `AccessDeniedRepeated`
//!   even for one refusal), so the trail says that something was left out
//!   and how much. Suppressed refusals of a principal that is never refused
//!   again are in the metric only. The limiter keeps one small entry per
//!   principal refused in the last minute (bounded: past
//!   [`MAX_TRACKED`] principals, entries of closed windows are dropped).
//!
//! The refusal itself never depends on any of this: the caller gets
//! `FORBIDDEN` whether or not a fact was written, and a fact that could not
//! be written (a full disk) is logged, counted as unrecorded and carried
//! into the principal's next fact as suppressed, never a reason to allow.
//!
//! [`Service::coalescing_denials`]: super::Service::coalescing_denials
//! [`ServiceConfig::denial_facts_per_minute`]: super::ServiceConfig::denial_facts_per_minute

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::model::{Action, DomainEvent, Principal};
use crate::time::Timestamp;

/// How many principals the rate limiter tracks before it drops the
/// entries of windows that have closed.
pub const MAX_TRACKED: usize = 10_000;

/// The length of a rate window, in seconds.
const WINDOW_SECS: i64 = 60;

tokio::task_local! {
    /// The refusals of the request being executed on this task.
    static REQUEST: Arc<Collector>;
}

/// The refusals of one principal within one request, not yet written.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Pending {
    pub principal: Principal,
    pub action: Action,
    pub target: String,
    pub site_id: Option<Uuid>,
    pub refused: u32,
}

impl Pending {
    pub fn one(principal: &Principal, action: Action, target: &str, site_id: Option<Uuid>) -> Self {
        Pending {
            principal: principal.clone(),
            action,
            target: target.to_string(),
            site_id,
            refused: 1,
        }
    }

    /// The fact to write, with `suppressed` earlier refusals folded in.
    pub fn fact(&self, suppressed: u64, at: Timestamp) -> DomainEvent {
        let by = &self.principal;
        if self.refused == 1 && suppressed == 0 {
            DomainEvent::AccessDenied {
                principal: by.name.clone(),
                token_id: Some(by.token_id),
                role: Some(by.role),
                action: self.action.as_str().to_string(),
                target: self.target.clone(),
                site_id: self.site_id,
                at,
            }
        } else {
            DomainEvent::AccessDeniedRepeated {
                principal: by.name.clone(),
                token_id: Some(by.token_id),
                role: Some(by.role),
                action: self.action.as_str().to_string(),
                target: self.target.clone(),
                site_id: self.site_id,
                refused: self.refused,
                suppressed,
                at,
            }
        }
    }
}

/// What one request scope gathers.
#[derive(Debug, Default)]
struct Collector {
    pending: Mutex<Vec<Pending>>,
}

impl Collector {
    fn push(&self, refusal: Pending) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending
            .iter_mut()
            .find(|p| p.principal.token_id == refusal.principal.token_id)
        {
            Some(first) => first.refused = first.refused.saturating_add(refusal.refused),
            None => pending.push(refusal),
        }
    }

    fn take(&self) -> Vec<Pending> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Counts a refusal in the current request scope. Gives it back when there
/// is no scope (the caller writes it at once).
pub(super) fn collect(refusal: Pending) -> Option<Pending> {
    let mut refusal = Some(refusal);
    let collected = REQUEST
        .try_with(|collector| {
            if let Some(refusal) = refusal.take() {
                collector.push(refusal);
            }
        })
        .is_ok();
    if collected {
        None
    } else {
        refusal
    }
}

/// Runs `work` in a fresh request scope; returns its output and the
/// refusals it gathered.
pub(super) async fn scoped<F: Future>(work: F) -> (F::Output, Vec<Pending>) {
    let collector = Arc::new(Collector::default());
    let output = REQUEST.scope(collector.clone(), work).await;
    (output, collector.take())
}

/// How many refusals there were, and how many were left out of the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DenialCounts {
    /// Every refusal, written down or not.
    pub refused: u64,
    /// Refusal facts written.
    pub facts: u64,
    /// Refusals not written because their principal was over its rate.
    pub unrecorded: u64,
}

/// One principal's rate window.
#[derive(Clone, Copy, Debug)]
struct Window {
    opened: Timestamp,
    facts: u32,
    /// Refusals not written since the principal's last fact.
    suppressed: u64,
}

/// The per-principal rate of refusal facts (see the module docs).
#[derive(Debug)]
pub(super) struct DenialLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<Uuid, Window>>,
    refused: AtomicU64,
    facts: AtomicU64,
    unrecorded: AtomicU64,
}

impl DenialLimiter {
    pub fn new(per_minute: u32) -> Self {
        DenialLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            facts: AtomicU64::new(0),
            unrecorded: AtomicU64::new(0),
        }
    }

    /// Whether `refused` refusals of `principal` at `now` may be written
    /// as a fact: `Some(suppressed)` (earlier refusals to fold into it) or
    /// `None` (over the rate: counted only).
    pub fn admit(&self, principal: Uuid, refused: u32, now: Timestamp) -> Option<u64> {
        self.refused
            .fetch_add(u64::from(refused), Ordering::Relaxed);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let closed = |w: &Window| now.as_micros() - w.opened.as_micros() >= WINDOW_SECS * 1_000_000;
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&principal) {
            windows.retain(|_, w| !closed(w));
        }
        let window = windows.entry(principal).or_insert(Window {
            opened: now,
            facts: 0,
            suppressed: 0,
        });
        if closed(window) {
            window.opened = now;
            window.facts = 0;
        }
        if window.facts < self.per_minute {
            window.facts += 1;
            self.facts.fetch_add(1, Ordering::Relaxed);
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed = window.suppressed.saturating_add(u64::from(refused));
            self.unrecorded
                .fetch_add(u64::from(refused), Ordering::Relaxed);
            None
        }
    }

    /// Gives back an admission whose fact could not be written: its
    /// refusals count as unrecorded and, with the suppressed ones it
    /// carried, go to the principal's next fact.
    pub fn unwrite(&self, principal: Uuid, refused: u32, suppressed: u64) {
        self.facts.fetch_sub(1, Ordering::Relaxed);
        self.unrecorded
            .fetch_add(u64::from(refused), Ordering::Relaxed);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(window) = windows.get_mut(&principal) {
            window.suppressed = window
                .suppressed
                .saturating_add(suppressed)
                .saturating_add(u64::from(refused));
        }
    }

    pub fn counts(&self) -> DenialCounts {
        DenialCounts {
            refused: self.refused.load(Ordering::Relaxed),
            facts: self.facts.load(Ordering::Relaxed),
            unrecorded: self.unrecorded.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000;

    #[test]
    fn a_principal_gets_its_rate_of_facts_per_window_and_the_rest_is_counted() {
        let limiter = DenialLimiter::new(3);
        let (eve, ann) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t0 = Timestamp::from_secs(1_000);
        let admitted: Vec<Option<u64>> = (0..5).map(|_| limiter.admit(eve, 1, t0)).collect();
        assert_eq!(admitted, vec![Some(0), Some(0), Some(0), None, None]);
        // Another principal has its own window.
        assert_eq!(limiter.admit(ann, 1, t0), Some(0));
        // Still inside eve's window: counted only.
        assert_eq!(limiter.admit(eve, 10, t0.plus_micros(MINUTE - 1)), None);
        // A new window: the next fact carries what was left out.
        assert_eq!(limiter.admit(eve, 1, t0.plus_micros(MINUTE)), Some(12));
        // A fact that could not be written goes to the next one.
        limiter.unwrite(eve, 1, 12);
        assert_eq!(limiter.admit(eve, 1, t0.plus_micros(MINUTE)), Some(13));
        assert_eq!(
            limiter.counts(),
            DenialCounts {
                refused: 18,
                facts: 5,
                unrecorded: 13,
            }
        );
    }

    #[test]
    fn a_request_scope_gathers_the_refusals_of_its_principal() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let eve = crate::model::testing::fixtures::principal(crate::model::Role::Viewer, "eve");
        let (_, pending) = rt.block_on(scoped(async {
            for n in 0..1000 {
                let target = format!("field-{n}");
                assert!(
                    collect(Pending::one(&eve, Action::ViewRecording, &target, None)).is_none()
                );
            }
        }));
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].refused, 1000);
        assert_eq!(pending[0].target, "field-0");
        // Outside a scope nothing is gathered.
        assert!(collect(Pending::one(&eve, Action::ViewRecording, "x", None)).is_some());
    }
}

#[cfg(test)]
mod service_tests;
