//! Whole answers kept for repeated identical queries.
//!
//! Dashboards and recording lists are polled: many clients, the same
//! request, over and over, while the read models stand still. An answer
//! to a query is a function of the request body, the caller and the read
//! models, and the read models announce every change of what they answer
//! through one counter ([`srs_projections::data_version`]). So an answer is
//! kept, and served again to the **same caller** for the **same body**,
//! while that counter has not moved:
//!
//! - **Who:** entries are keyed by the caller's token and hold the whole
//!   principal (role, sites, groups, server), compared on every hit.
//!   Authentication runs before every lookup, so a revoked token is refused
//!   as before. Grants and restrictions are read models: changing them
//!   moves the counter.
//! - **What:** only queries (never mutations), and only when every root
//!   field is one of [`KEPT_ROOTS`] and no field anywhere in the operation
//!   is one of [`UNKEPT_FIELDS`]: `playback` and `events` (and
//!   `DataPoints.performance`) read the log,
//!   which moves before the read models do. Answers with any error are
//!   never kept, so denials (and their `AccessDenied` facts), timeouts and
//!   validation errors happen every time.
//! - **When:** the counter is read before and after executing, and the
//!   answer is kept only when both agree, so it is one consistent state.
//!   The counter moves after a change is visible and before the runner
//!   publishes its position, so a query with `atLeast` never gets an
//!   answer older than its position.
//! - **The clock:** the dashboard's default range and its "due for
//!   archive/delete" counts depend on the current time; its answers are
//!   kept for [`CLOCK_TTL`] at most, so they trail the clock by at most
//!   that, never the data.
//! - A request with `Cache-Control: no-cache` is executed afresh (and its
//!   answer kept for the next one).
//!
//! The map is bounded ([`MAX_ANSWERS`] entries, [`MAX_KEPT_BYTES`] in
//! all, answers up to [`MAX_ANSWER_BYTES`]); it holds answers of one
//! counter value at a time, so a change frees every older answer at once.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use axum::body::Bytes;
use axum::http::HeaderValue;
use srs_domain::model::Principal;
use uuid::Uuid;

/// Root query fields whose answers depend on the read models and the
/// caller only (and, for the dashboard, the clock).
pub const KEPT_ROOTS: &[&str] = &[
    "__typename",
    "me",
    "sites",
    "servers",
    "server",
    "recordings",
    "recording",
    "policies",
    "playbackPermissions",
    "retentionPolicy",
    "dashboard",
    "detectedEvents",
    "auditTrail",
];

/// Root fields whose answers depend on the current time.
const CLOCK_ROOTS: &[&str] = &["dashboard"];

/// Fields that make an answer unkeepable wherever they appear: they read
/// the log rather than the read models (`playback`, `events`,
/// `performance`), or read what heartbeats move without a read model
/// (`lastHeartbeat`).
pub const UNKEPT_FIELDS: &[&str] = &["playback", "events", "lastHeartbeat", "performance"];

/// How long an answer that depends on the clock is kept.
pub const CLOCK_TTL: Duration = Duration::from_secs(1);
/// The most answers kept.
pub const MAX_ANSWERS: usize = 1024;
/// The largest answer kept, in bytes.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The most bytes of answers kept in all.
pub const MAX_KEPT_BYTES: usize = 64 * 1024 * 1024;
/// Fragments nest no deeper than this in a kept operation (validation
/// already refuses cycles; this only bounds the walk).
const MAX_WALK_DEPTH: usize = 64;

/// Whether and how long the answer to an operation may be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keep {
    /// `None`: as long as the read models stand still.
    pub ttl: Option<Duration>,
}

/// What [`Keep`] says about the operation `operation_name` selects in
/// `document`: `None` when its answer must not be kept.
pub fn keep(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<Keep> {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?,
        // Named operations: without a name, only a document of one runs.
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()?
        }
        (DocumentOperations::Multiple(_), None) => return None,
    };
    if operation.node.ty != OperationType::Query {
        return None;
    }
    let mut roots = HashSet::new();
    collect_fields(document, &operation.node.selection_set.node, 0, &mut roots)?;
    if !roots.iter().all(|root| KEPT_ROOTS.contains(root)) {
        return None;
    }
    if !keepable_below(document, &operation.node.selection_set.node, 0) {
        return None;
    }
    let ttl = roots
        .iter()
        .any(|root| CLOCK_ROOTS.contains(root))
        .then_some(CLOCK_TTL);
    Some(Keep { ttl })
}

/// The names of the fields selected at this level (through fragments).
fn collect_fields<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    depth: usize,
    out: &mut HashSet<&'a str>,
) -> Option<()> {
    if depth > MAX_WALK_DEPTH {
        return None;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                out.insert(field.node.name.node.as_str());
            }
            Selection::FragmentSpread(spread) => {
                let fragment = document.fragments.get(&spread.node.fragment_name.node)?;
                collect_fields(document, &fragment.node.selection_set.node, depth + 1, out)?;
            }
            Selection::InlineFragment(inline) => {
                collect_fields(document, &inline.node.selection_set.node, depth + 1, out)?;
            }
        }
    }
    Some(())
}

/// False when a field of [`UNKEPT_FIELDS`] is selected anywhere below.
fn keepable_below(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
    if depth > MAX_WALK_DEPTH {
        return false;
    }
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(field) => {
            !UNKEPT_FIELDS.contains(&field.node.name.node.as_str())
                && keepable_below(document, &field.node.selection_set.node, depth + 1)
        }
        Selection::FragmentSpread(spread) => document
            .fragments
            .get(&spread.node.fragment_name.node)
            .is_some_and(|fragment| {
                keepable_below(document, &fragment.node.selection_set.node, depth + 1)
            }),
        Selection::InlineFragment(inline) => {
            keepable_below(document, &inline.node.selection_set.node, depth + 1)
        }
    })
}

/// A kept answer, ready to send.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The operation's name, for the metrics.
    pub operation: String,
    /// The JSON of the GraphQL response.
    pub body: Bytes,
    /// Its `Cache-Control` header, if the schema gave one.
    pub cache_control: Option<HeaderValue>,
}

#[derive(Debug)]
struct Entry {
    principal: Principal,
    expires: Option<Instant>,
    answer: Answer,
}

#[derive(Debug, Default)]
struct Kept {
    /// The counter value every entry was computed at.
    version: u64,
    bytes: usize,
    entries: HashMap<(Uuid, Bytes), Entry>,
}

/// The kept answers (see the module docs).
#[derive(Debug, Default)]
pub struct Answers {
    kept: Mutex<Kept>,
}

impl Answers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The answer kept for `principal` sending `body`, if it is still
    /// right: computed at `version` (the counter now) and not expired.
    pub fn get(&self, principal: &Principal, body: &Bytes, version: u64) -> Option<Answer> {
        let kept = self.kept.lock().ok()?;
        if kept.version != version {
            return None;
        }
        let entry = kept.entries.get(&(principal.token_id, body.clone()))?;
        let fresh = entry.expires.is_none_or(|at| Instant::now() < at);
        (fresh && entry.principal == *principal).then(|| entry.answer.clone())
    }

    /// Whether any answer of counter value `version` is kept: when none
    /// is, a request need not be authenticated twice to find out.
    pub fn holds(&self, version: u64) -> bool {
        self.kept
            .lock()
            .is_ok_and(|kept| kept.version == version && !kept.entries.is_empty())
    }

    /// Keeps `answer`, computed for `principal` sending `body` while the
    /// counter read `version` before and after.
    pub fn put(
        &self,
        principal: &Principal,
        body: &Bytes,
        version: u64,
        keep: Keep,
        answer: Answer,
    ) {
        if body.len() > super::documents::MAX_CACHED_BYTES || answer.body.len() > MAX_ANSWER_BYTES {
            return;
        }
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        if kept.version != version {
            // An answer of an older state never replaces newer ones.
            if version < kept.version {
                return;
            }
            *kept = Kept {
                version,
                ..Kept::default()
            };
        }
        if kept.entries.len() >= MAX_ANSWERS
            || kept.bytes + answer.body.len() + body.len() > MAX_KEPT_BYTES
        {
            kept.entries.clear();
            kept.bytes = 0;
        }
        kept.bytes += answer.body.len() + body.len();
        let entry = Entry {
            principal: principal.clone(),
            expires: keep.ttl.map(|ttl| Instant::now() + ttl),
            answer,
        };
        if let Some(old) = kept
            .entries
            .insert((principal.token_id, body.clone()), entry)
        {
            kept.bytes = kept
                .bytes
                .saturating_sub(old.answer.body.len() + body.len());
        }
    }

    /// How many answers are kept (for tests).
    pub fn len(&self) -> usize {
        self.kept.lock().map_or(0, |kept| kept.entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep_of(query: &str, operation: Option<&str>) -> Option<Keep> {
        let document = async_graphql::parser::parse_query(query).unwrap();
        keep(&document, operation)
    }

    #[test]
    fn read_model_queries_are_kept_and_the_dashboard_only_briefly() {
        assert_eq!(
            keep_of("{ recordings { totalCount } me { name } }", None),
            Some(Keep { ttl: None })
        );
        assert_eq!(
            keep_of("query D { dashboard { recordingsTotal } }", None),
            Some(Keep {
                ttl: Some(CLOCK_TTL)
            })
        );
    }

    #[test]
    fn writes_log_reads_and_other_roots_are_never_kept() {
        for query in [
            "mutation { createSite(input: {name: \"x\"}) { position } }",
            "{ recording(id: \"x\") { playback { position } } }",
            "{ recordings { edges { node { events { totalCount } } } } }",
            "{ history { totalCount } }",
            "{ projections { name } }",
            "{ recordings { totalCount } history { totalCount } }",
            // Through fragments, named and inline, at any depth.
            "{ ...R } fragment R on Query { history { totalCount } }",
            "{ recording(id: \"x\") { ...P } } fragment P on Recording { playback { position } }",
            "{ recording(id: \"x\") { ... on Recording { events { totalCount } } } }",
            // Several operations and none named: the schema refuses it.
            "query A { me { name } } query B { me { name } }",
            // A fragment that does not exist.
            "{ ...Missing }",
        ] {
            assert_eq!(keep_of(query, None), None, "{query}");
        }
        assert_eq!(
            keep_of("query A { me { name } } mutation B { x }", Some("A")),
            Some(Keep { ttl: None })
        );
        assert_eq!(
            keep_of("query A { me { name } } mutation B { x }", Some("B")),
            None
        );
    }

    /// Every `Type.field` a kept answer can select, from the schema.
    fn reachable_fields() -> std::collections::BTreeSet<String> {
        use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
        let sdl = crate::graphql::sdl();
        let document = async_graphql::parser::parse_schema(&sdl).unwrap();
        let mut types = HashMap::new();
        for definition in &document.definitions {
            if let TypeSystemDefinition::Type(ty) = definition {
                types.insert(ty.node.name.node.to_string(), ty.node.kind.clone());
            }
        }
        fn base(ty: &Type) -> String {
            match &ty.base {
                BaseType::Named(name) => name.to_string(),
                BaseType::List(inner) => base(inner),
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut queue: Vec<String> = Vec::new();
        let Some(TypeKind::Object(query)) = types.get("Query") else {
            panic!("no Query type");
        };
        for field in &query.fields {
            if KEPT_ROOTS.contains(&field.node.name.node.as_str()) {
                seen.insert(format!("Query.{}", field.node.name.node));
                queue.push(base(&field.node.ty.node));
            }
        }
        let mut visited = HashSet::new();
        while let Some(name) = queue.pop() {
            if !visited.insert(name.clone()) {
                continue;
            }
            let fields = match types.get(&name) {
                Some(TypeKind::Object(object)) => &object.fields,
                Some(TypeKind::Interface(interface)) => &interface.fields,
                Some(TypeKind::Union(union)) => {
                    queue.extend(union.members.iter().map(|m| m.node.to_string()));
                    continue;
                }
                _ => continue,
            };
            for field in fields {
                let field_name = field.node.name.node.as_str();
                if UNKEPT_FIELDS.contains(&field_name) {
                    continue;
                }
                seen.insert(format!("{name}.{field_name}"));
                queue.push(base(&field.node.ty.node));
            }
        }
        seen
    }

    /// A field added where kept answers reach must be reviewed: does it
    /// answer from the read models and the caller only (no log read, no
    /// clock, no write)? If so, add it to `kept_fields.txt`; if not, name
    /// it in [`UNKEPT_FIELDS`] (or its root in neither list).
    #[test]
    fn every_field_a_kept_answer_reaches_was_reviewed() {
        let reviewed: std::collections::BTreeSet<String> = include_str!("kept_fields.txt")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect();
        let reachable = reachable_fields();
        let unreviewed: Vec<_> = reachable.difference(&reviewed).collect();
        let gone: Vec<_> = reviewed.difference(&reachable).collect();
        assert!(
            unreviewed.is_empty() && gone.is_empty(),
            "fields reachable from kept answers but not reviewed: {unreviewed:?}; \
             reviewed but no longer reachable: {gone:?} (see api/src/graphql/kept_fields.txt)"
        );
    }

    fn principal(token: u128, role: srs_domain::model::Role) -> Principal {
        Principal {
            token_id: Uuid::from_u128(token),
            name: "p".into(),
            role,
            site_ids: Default::default(),
            groups: vec![],
            server_id: None,
        }
    }

    fn answer(text: &'static str) -> Answer {
        Answer {
            operation: String::new(),
            body: Bytes::from_static(text.as_bytes()),
            cache_control: None,
        }
    }

    #[test]
    fn an_answer_serves_only_its_caller_body_and_version() {
        use srs_domain::model::Role;
        let answers = Answers::new();
        let admin = principal(1, Role::Admin);
        let body = Bytes::from_static(b"{\"query\":\"{ me { name } }\"}");
        answers.put(&admin, &body, 7, Keep { ttl: None }, answer("a"));
        assert_eq!(answers.get(&admin, &body, 7).unwrap().body, "a");
        // Another version, body, token, or the same token with other rights.
        assert!(answers.get(&admin, &body, 8).is_none());
        assert!(answers.get(&admin, &Bytes::from_static(b"{}"), 7).is_none());
        assert!(answers.get(&principal(2, Role::Admin), &body, 7).is_none());
        assert!(answers.get(&principal(1, Role::Viewer), &body, 7).is_none());
        // An older state's answer never replaces a newer one's.
        answers.put(&admin, &body, 9, Keep { ttl: None }, answer("b"));
        answers.put(&admin, &body, 8, Keep { ttl: None }, answer("c"));
        assert_eq!(answers.get(&admin, &body, 9).unwrap().body, "b");
        assert_eq!(answers.len(), 1);
        assert!(answers.holds(9));
        assert!(!answers.holds(10));
    }

    #[test]
    fn clock_answers_expire_and_the_map_stays_bounded() {
        use srs_domain::model::Role;
        let answers = Answers::new();
        let admin = principal(1, Role::Admin);
        let body = Bytes::from_static(b"{}");
        answers.put(
            &admin,
            &body,
            1,
            Keep {
                ttl: Some(Duration::ZERO),
            },
            answer("x"),
        );
        assert!(answers.get(&admin, &body, 1).is_none());
        for n in 0..=MAX_ANSWERS {
            let body = Bytes::from(format!("{{\"n\":{n}}}"));
            answers.put(&admin, &body, 1, Keep { ttl: None }, answer("y"));
        }
        assert!(answers.len() <= MAX_ANSWERS);
        let huge = Answer {
            operation: String::new(),
            body: Bytes::from(vec![b' '; MAX_ANSWER_BYTES + 1]),
            cache_control: None,
        };
        answers.put(&admin, &body, 1, Keep { ttl: None }, huge);
        assert!(answers.get(&admin, &body, 1).is_none());
    }
}
