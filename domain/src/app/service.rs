//! [`Service`]: load an aggregate, decide, append with the expected version.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use uuid::Uuid;

use super::cache::{Cached, StateCache};
use super::denials::{self, DenialCounts, DenialLimiter, Pending};
use super::error::AppError;
use crate::actor::Actor;
use crate::log::{
    AppendError, Conflict, EventStore, ExpectedVersion, NewEvent, MAX_EVENTS_PER_APPEND,
};
use crate::model::{
    Action, Aggregate, DomainEvent, PlaybackPermission, PlaybackScope, Principal, Target,
    ACCESS_DENIED_STREAM,
};
use crate::model::{Lifecycle, RecordingError};
use crate::seal::{self, KeyRing, SealError};
use crate::time::{Clock, Timestamp};

/// How many events one read of a stream asks for.
const READ_BATCH: usize = 1_024;

/// Tunables of the [`Service`].
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// How many aggregate states the cache keeps.
    pub cache_capacity: usize,
    /// A server without a heartbeat for this long is offline.
    pub liveness_period_secs: i64,
    /// Retries of a command after a conflict, when the caller named no
    /// expected version.
    pub max_retries: u32,
    /// The most refusal facts (`AccessDenied`, `AccessDeniedRepeated`)
    /// written per principal and minute; refusals beyond are counted
    /// only (see `app::denials`).
    pub denial_facts_per_minute: u32,
}

/// The default of [`ServiceConfig::denial_facts_per_minute`].
pub const DENIAL_FACTS_PER_MINUTE: u32 = 20;

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            cache_capacity: 4_096,
            liveness_period_secs: 90,
            max_retries: 3,
            denial_facts_per_minute: DENIAL_FACTS_PER_MINUTE,
        }
    }
}

/// Where the playback permissions a principal holds on a site come from:
/// in srs, the access-restrictions read model. The app layer asks it
/// before deciding anything an auditor does on a recording.
#[async_trait]
pub trait PermissionSource: Send + Sync {
    /// The scopes of the live permissions `principal` holds on `site_id`.
    async fn grants(
        &self,
        principal: &Principal,
        site_id: Uuid,
    ) -> Result<Vec<PlaybackScope>, AppError>;
}

/// A [`PermissionSource`] folded in memory from permission events: for
/// tests, and for wiring a subscription straight into the service.
#[derive(Debug, Default)]
pub struct InMemoryPermissions {
    permissions: Mutex<HashMap<Uuid, PlaybackPermission>>,
}

impl InMemoryPermissions {
    /// Folds one event in; other events are ignored.
    pub fn apply(&self, event: &DomainEvent) {
        let id = match event {
            DomainEvent::PlaybackPermissionGranted { permission_id, .. }
            | DomainEvent::PlaybackPermissionRevoked { permission_id, .. } => *permission_id,
            _ => return,
        };
        let mut permissions = self.permissions.lock().unwrap_or_else(|e| e.into_inner());
        permissions.entry(id).or_default().evolve(event);
    }
}

#[async_trait]
impl PermissionSource for InMemoryPermissions {
    async fn grants(
        &self,
        principal: &Principal,
        site_id: Uuid,
    ) -> Result<Vec<PlaybackScope>, AppError> {
        let permissions = self.permissions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(crate::model::grants_for(
            principal,
            site_id,
            permissions.values(),
        ))
    }
}

/// An aggregate as loaded from its stream.
#[derive(Clone, Debug)]
pub struct Loaded<A> {
    pub stream: String,
    pub state: A,
    /// The stream's version (0: no stream).
    pub version: u64,
    /// The position of the stream's last event (0: no stream).
    pub last_position: u64,
}

/// What a command did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Executed {
    /// The positions of the appended events (empty when nothing changed).
    pub positions: Vec<u64>,
    /// What a reader must have seen to observe the outcome: the last
    /// appended position, or the stream's last position when nothing was
    /// appended. Mutations return it as `position`.
    pub last_position: u64,
    /// The stream's version afterwards.
    pub version: u64,
    /// The events appended (empty when nothing changed).
    pub events: Vec<DomainEvent>,
    /// The events were already stored (a retried request); nothing new was written.
    pub deduplicated: bool,
}

impl Executed {
    fn unchanged<A>(loaded: &Loaded<A>) -> Self {
        Executed {
            positions: Vec::new(),
            last_position: loaded.last_position,
            version: loaded.version,
            events: Vec::new(),
            deduplicated: false,
        }
    }

    /// Several outcomes as one (for commands applied to several streams).
    pub fn merge(outcomes: impl IntoIterator<Item = Executed>) -> Executed {
        let mut merged = Executed::default();
        for outcome in outcomes {
            merged.positions.extend(outcome.positions);
            merged.last_position = merged.last_position.max(outcome.last_position);
            merged.version = outcome.version;
            merged.events.extend(outcome.events);
            merged.deduplicated |= outcome.deduplicated;
        }
        merged
    }
}

/// The application layer: use cases over the event log. Cheap to share
/// behind an `Arc`; all methods take `&self`.
pub struct Service {
    pub(super) store: Arc<dyn EventStore<DomainEvent>>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) permissions: Arc<dyn PermissionSource>,
    pub(super) config: ServiceConfig,
    /// The recordings' keys: session events and detections are sealed
    /// under them right before they are appended (see `crate::seal`).
    pub(super) keys: Arc<KeyRing>,
    cache: Mutex<StateCache>,
    /// The per-principal rate of refusal facts.
    denials: DenialLimiter,
    /// Last heartbeat per server: deliberately not in the log.
    pub(super) heartbeats: Mutex<HashMap<Uuid, Timestamp>>,
    /// Servers count as alive from here until their first heartbeat, so a
    /// restart does not flag every server offline at once.
    pub(super) started_at: Timestamp,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service with the default [`ServiceConfig`].
    pub fn new(
        store: Arc<dyn EventStore<DomainEvent>>,
        clock: Arc<dyn Clock>,
        permissions: Arc<dyn PermissionSource>,
    ) -> Self {
        Self::with_config(store, clock, permissions, ServiceConfig::default())
    }

    /// A service with explicit tunables.
    pub fn with_config(
        store: Arc<dyn EventStore<DomainEvent>>,
        clock: Arc<dyn Clock>,
        permissions: Arc<dyn PermissionSource>,
        config: ServiceConfig,
    ) -> Self {
        let started_at = clock.now();
        Service {
            store,
            clock,
            permissions,
            keys: Arc::new(KeyRing::in_memory()),
            cache: Mutex::new(StateCache::new(config.cache_capacity)),
            denials: DenialLimiter::new(config.denial_facts_per_minute),
            config,
            heartbeats: Mutex::new(HashMap::new()),
            started_at,
        }
    }

    /// The service sealing under `keys` (the data directory's
    /// `KeyRing`, shared with the content store). Without it the service
    /// keeps its keys in memory: for tests and benches only, since a
    /// restart would lose them.
    pub fn with_keys(mut self, keys: Arc<KeyRing>) -> Self {
        self.keys = keys;
        self
    }

    /// The recordings' keys this service seals under.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The log this service writes to.
    pub fn store(&self) -> &Arc<dyn EventStore<DomainEvent>> {
        &self.store
    }

    /// Now, by the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn cache(&self) -> MutexGuard<'_, StateCache> {
        // A panic while holding the lock cannot leave an entry half-written
        // (entries are replaced whole), so a poisoned cache is still sound.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads aggregate `id`: the cached state plus the events after it.
    pub async fn load<A: Aggregate>(&self, id: Uuid) -> Result<Loaded<A>, AppError> {
        let stream = A::stream(id);
        let cached = self.cache().get::<A>(&stream);
        let Cached {
            mut state,
            mut version,
            mut last_position,
        } = cached.unwrap_or(Cached {
            state: A::default(),
            version: 0,
            last_position: 0,
        });
        let before = version;
        loop {
            let batch = self
                .store
                .read_stream(&stream, version + 1, READ_BATCH)
                .await?;
            let read = batch.len();
            for envelope in batch {
                state.evolve(&envelope.payload);
                version = envelope.version;
                last_position = envelope.position;
            }
            if read < READ_BATCH {
                break;
            }
        }
        if version != before {
            self.cache().put(
                &stream,
                Cached {
                    state: state.clone(),
                    version,
                    last_position,
                },
            );
        }
        Ok(Loaded {
            stream,
            state,
            version,
            last_position,
        })
    }

    /// Runs `command` on aggregate `id` (see [`Service::execute_with`]).
    pub async fn execute<A: Aggregate>(
        &self,
        id: Uuid,
        command: A::Command,
        actor: &Actor,
        expected: Option<u64>,
    ) -> Result<Executed, AppError>
    where
        AppError: From<A::Error>,
    {
        self.execute_with::<A, _>(id, actor, expected, |state| {
            state.decide(command.clone()).map_err(AppError::from)
        })
        .await
    }

    /// Loads aggregate `id`, lets `decide` turn its state into events, and
    /// appends them expecting the loaded version.
    ///
    /// With `expected` (the version the caller last saw) a stale stream is
    /// a [`AppError::Conflict`] at once. Without it, a conflicting append
    /// is retried on the fresh state up to `max_retries` times: `decide`
    /// runs again, so every rule is checked against what is really there.
    pub async fn execute_with<A, F>(
        &self,
        id: Uuid,
        actor: &Actor,
        expected: Option<u64>,
        mut decide: F,
    ) -> Result<Executed, AppError>
    where
        A: Aggregate,
        F: FnMut(&A) -> Result<Vec<DomainEvent>, AppError>,
    {
        let mut retries = 0;
        loop {
            let loaded = self.load::<A>(id).await?;
            if let Some(expected) = expected {
                if expected != loaded.version {
                    return Err(AppError::Conflict(Conflict {
                        stream: loaded.stream,
                        expected: ExpectedVersion::Exact(expected),
                        actual: (loaded.version > 0).then_some(loaded.version),
                    }));
                }
            }
            let events = decide(&loaded.state)?;
            match self.append(&loaded, events, actor).await {
                Err(AppError::Conflict(conflict))
                    if expected.is_none() && retries < self.config.max_retries =>
                {
                    tracing::debug!(%conflict, retries, "retrying a command after a conflict");
                    retries += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// Runs `command` on aggregate `id` like [`Service::execute`], its
    /// append guarded by `guard` (a stream and the version the caller
    /// decided on). A conflict on the aggregate's own stream is decided
    /// again on the fresh state; a moved guard is returned as the conflict
    /// it is, for the caller to decide again on the guard's new state.
    pub(super) async fn execute_guarded<A: Aggregate>(
        &self,
        id: Uuid,
        command: A::Command,
        actor: &Actor,
        guard: (String, u64),
    ) -> Result<Executed, AppError>
    where
        AppError: From<A::Error>,
    {
        let mut retries = 0;
        loop {
            let loaded = self.load::<A>(id).await?;
            let events = loaded.state.decide(command.clone())?;
            let guards = vec![(guard.0.clone(), ExpectedVersion::Exact(guard.1))];
            match self.append_guarded(&loaded, events, actor, guards).await {
                Err(AppError::Conflict(conflict))
                    if conflict.stream == loaded.stream && retries < self.config.max_retries =>
                {
                    retries += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// Appends `events` to the loaded stream expecting its loaded version,
    /// each under its natural id when it has one, all correlated to the
    /// first. Keeps the cache in step.
    pub(super) async fn append<A: Aggregate>(
        &self,
        loaded: &Loaded<A>,
        events: Vec<DomainEvent>,
        actor: &Actor,
    ) -> Result<Executed, AppError> {
        self.append_guarded(loaded, events, actor, Vec::new()).await
    }

    /// [`Service::append`], committed only while every guard stream is at
    /// its given version (see `EventStore::append_guarded`).
    pub(super) async fn append_guarded<A: Aggregate>(
        &self,
        loaded: &Loaded<A>,
        events: Vec<DomainEvent>,
        actor: &Actor,
        guards: Vec<(String, ExpectedVersion)>,
    ) -> Result<Executed, AppError> {
        if events.is_empty() {
            return Ok(Executed::unchanged(loaded));
        }
        // One command is one append, and an append is bounded: a request
        // whose consequences (say, a batch of session events that trips
        // many zero-cool-down response rules) exceed the bound is refused
        // as a whole, before anything is written.
        if events.len() > MAX_EVENTS_PER_APPEND {
            return Err(AppError::Validation(format!(
                "this request would record {} events at once; at most {MAX_EVENTS_PER_APPEND} \
                 can be recorded together: send smaller batches",
                events.len()
            )));
        }
        let stored = self.seal_all(&events)?;
        let mut new_events: Vec<NewEvent<DomainEvent>> = stored
            .into_iter()
            .map(|event| {
                let natural = event.natural_id();
                let new = NewEvent::new(actor.clone(), event);
                match natural {
                    Some(id) => new.with_id(id),
                    None => new,
                }
            })
            .collect();
        let correlation = new_events[0].event_id;
        for event in new_events.iter_mut().skip(1) {
            event.correlation_id = correlation;
            event.causation_id = Some(correlation);
        }
        let appended = match self
            .store
            .append_guarded(
                &loaded.stream,
                ExpectedVersion::Exact(loaded.version),
                new_events,
                guards,
            )
            .await
        {
            Ok(appended) => appended,
            Err(error) => {
                if let AppendError::Conflict(conflict) = &error {
                    // The stream that moved: ours or a guard.
                    self.cache().invalidate(&conflict.stream);
                }
                return Err(error.into());
            }
        };
        if appended.deduplicated {
            // Stored earlier by a retried request: our fold would be a guess.
            self.cache().invalidate(&loaded.stream);
        } else {
            let mut state = loaded.state.clone();
            for event in &events {
                state.evolve(event);
            }
            self.cache().put(
                &loaded.stream,
                Cached {
                    state,
                    version: appended.stream_version,
                    last_position: appended.last_position(),
                },
            );
        }
        Ok(Executed {
            last_position: appended.last_position(),
            positions: appended.positions,
            version: appended.stream_version,
            events,
            deduplicated: appended.deduplicated,
        })
    }

    /// The stored form of `events`: session events and detections sealed
    /// under their recording's key. A recording that started before keys
    /// were created at the start (still live, or the aggregate would not
    /// have decided these events) gets its key now; a recording this
    /// service's ring shredded meanwhile (a deletion racing the command)
    /// is refused as deleted, never given a new key.
    fn seal_all(&self, events: &[DomainEvent]) -> Result<Vec<DomainEvent>, AppError> {
        let failed = |error: SealError| match error {
            SealError::NoKey(_) => AppError::Recording(RecordingError::NotLive(Lifecycle::Deleted)),
            _ if error.is_unavailable() => AppError::Log(crate::log::LogError::Unavailable {
                reason: error.to_string(),
            }),
            other => AppError::Internal(other.to_string()),
        };
        events
            .iter()
            .map(|event| {
                if let DomainEvent::SessionEventRecorded { recording_id, .. }
                | DomainEvent::EventDetected { recording_id, .. } = event
                {
                    if !self.keys.has_key(*recording_id) {
                        self.keys.create(*recording_id).map_err(failed)?;
                    }
                }
                seal::seal_event(&self.keys, event.clone()).map_err(failed)
            })
            .collect()
    }

    /// Creates the recording's key (the start of a recording, before its
    /// `RecordingStarted` is appended); the file writes and syncs run on
    /// the blocking pool.
    pub(super) async fn create_key(&self, recording_id: uuid::Uuid) -> Result<(), AppError> {
        let keys = self.keys.clone();
        let created = tokio::task::spawn_blocking(move || keys.create(recording_id).map(drop))
            .await
            .map_err(|join| AppError::Internal(join.to_string()))?;
        created.map_err(|error| {
            if error.is_unavailable() {
                AppError::Log(crate::log::LogError::Unavailable {
                    reason: error.to_string(),
                })
            } else {
                AppError::Internal(error.to_string())
            }
        })
    }

    /// Checks `may(by, action, target)`; a refusal is recorded as
    /// `AccessDenied` and returned as [`AppError::Forbidden`].
    pub async fn authorize(
        &self,
        by: &Principal,
        action: Action,
        target: Target<'_>,
    ) -> Result<(), AppError> {
        if crate::model::may(by, action, target) {
            return Ok(());
        }
        Err(self
            .deny(by, action, &target.label(), target.site_id())
            .await)
    }

    /// Records a refused attempt and returns the error to give the caller.
    /// Inside a request scope ([`Service::coalescing_denials`]) the refusal
    /// is counted towards the request's one fact; outside, it is written
    /// at once. Either way the per-principal rate applies (`app::denials`).
    pub async fn deny(
        &self,
        by: &Principal,
        action: Action,
        target: &str,
        site_id: Option<Uuid>,
    ) -> AppError {
        let message = format!("{} ({}) may not {} on {}", by.name, by.role, action, target);
        if let Some(refusal) = denials::collect(Pending::one(by, action, target, site_id)) {
            self.write_denial(refusal).await;
        }
        AppError::Forbidden(message)
    }

    /// Records a refusal the caller decided itself (the API's own checks),
    /// like [`Service::deny`] but without the error. Never fails: a fact
    /// that cannot be written is logged (the `Result` is kept for callers
    /// written against the former signature).
    pub async fn record_access_denied(
        &self,
        by: &Principal,
        action: Action,
        target: &str,
        site_id: Option<Uuid>,
    ) -> Result<(), AppError> {
        let _ = self.deny(by, action, target, site_id).await;
        Ok(())
    }

    /// Runs `work` (the execution of one API request) so that the refusals
    /// it meets are written as at most one fact per principal, once `work`
    /// is done and before its output is handed back.
    pub async fn coalescing_denials<F: Future>(&self, work: F) -> F::Output {
        let (output, refusals) = denials::scoped(work).await;
        for refusal in refusals {
            self.write_denial(refusal).await;
        }
        output
    }

    /// Refusals so far: all, written as facts, left out by the rate.
    pub fn denial_counts(&self) -> DenialCounts {
        self.denials.counts()
    }

    /// Writes one refusal fact, when the principal's rate admits it. A
    /// fact that cannot be written is logged: the refusal stands anyway.
    async fn write_denial(&self, refusal: Pending) {
        let now = self.now();
        let principal = refusal.principal.token_id;
        let Some(suppressed) = self.denials.admit(principal, refusal.refused, now) else {
            tracing::debug!(
                principal = %refusal.principal.name,
                refused = refusal.refused,
                "refusal over the principal's rate of facts: counted, not written"
            );
            return;
        };
        let event = refusal.fact(suppressed, now);
        let appended = self
            .store
            .append(
                ACCESS_DENIED_STREAM,
                ExpectedVersion::Any,
                vec![NewEvent::new(refusal.principal.actor(), event)],
            )
            .await;
        if let Err(error) = appended {
            self.denials.unwrite(principal, refusal.refused, suppressed);
            tracing::error!(%error, "could not record an access denial");
        }
    }

    /// Turns a domain `Forbidden` (decided inside an aggregate) into a
    /// recorded denial; passes everything else through.
    pub(super) async fn recording_denials<T>(
        &self,
        by: &Principal,
        action: Action,
        target: &str,
        site_id: Option<Uuid>,
        outcome: Result<T, AppError>,
    ) -> Result<T, AppError> {
        match outcome {
            Err(error) if error.code() == Some(crate::model::ErrorCode::Forbidden) => {
                let _ = self.deny(by, action, target, site_id).await;
                Err(error)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
