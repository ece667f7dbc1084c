//! [`Plain`]: an object whose plain fields are resolved in one pass.
//!
//! async-graphql resolves each field of an object on its own: a boxed
//! future, a context with its path, the match of the field's name against
//! every resolver, an insert into an ordered map that grows as it goes.
//! For a page of 50 recordings with 11 fields that is 550 times, and it
//! was the largest share of a page's CPU (`perf` on `srs serve` at 1M
//! recordings). Most of those fields are plain: a value read from the row
//! in memory, no argument, nothing to wait for, nothing that can fail.
//!
//! When a selection asks only such fields (with or without aliases),
//! [`Plain`] builds the object's answer directly, each value converted by
//! the same scalar type the field's resolver returns; a field whose value
//! is itself an object of plain fields (a page's edges, their nodes) is
//! answered the same way, so a whole page is one pass (enums answer as
//! their items). Anything else in the selection (a field that takes
//! arguments or reads a read model; a fragment; a directive) and the
//! whole object is resolved the usual way (its fields that are `Plain`
//! themselves still take this path). The schema stays `T`'s. The schema
//! registers no extension, so no per-field hook is bypassed; one that
//! needs per-field hooks would have to turn this off. [`plain_object`]
//! makes a `SimpleObject` plain from the list of its plain fields.
//!
//! `tests::plain_fields_answer_what_their_resolvers_answer` holds every
//! plain field to its resolver's answer.

use async_graphql::parser::types::{Field, Selection};
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};

/// An object some of whose fields are plain values.
pub trait PlainFields: OutputType {
    /// The answer of plain field `field` (asked without arguments or
    /// directives), or `None` when it is not one of them. `ctx` is this
    /// object's selection set; a field whose value is a plain object
    /// answers with [`object`].
    fn plain(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<Value>;

    /// The plain fields' names, where they are listed ([`plain_object`]),
    /// for the tests that hold them to the schema.
    #[cfg(test)]
    const FIELDS: &'static [&'static str] = &[];
}

/// `T`, whose selections of plain fields only are answered in one pass
/// (same GraphQL type as `T`).
pub struct Plain<T>(pub T);

/// The answer of `field`, whose value is `value`, a plain object: `None`
/// when its selection asks more than plain fields.
pub fn object<T: PlainFields>(
    value: &T,
    ctx: &ContextSelectionSet<'_>,
    field: &Field,
) -> Option<Value> {
    answer(value, &ctx.with_selection_set(&field.selection_set))
}

/// The answer of `field`, a list of plain objects.
pub fn list<'a, T: PlainFields + 'a>(
    values: impl IntoIterator<Item = &'a T>,
    ctx: &ContextSelectionSet<'_>,
    field: &Field,
) -> Option<Value> {
    let ctx = ctx.with_selection_set(&field.selection_set);
    let items: Option<Vec<Value>> = values.into_iter().map(|v| answer(v, &ctx)).collect();
    items.map(Value::List)
}

/// `value`'s answer when `ctx` selects plain fields only.
fn answer<T: PlainFields>(value: &T, ctx: &ContextSelectionSet<'_>) -> Option<Value> {
    let items = &ctx.item.node.items;
    let mut out = async_graphql::indexmap::IndexMap::with_capacity(items.len());
    for selection in items {
        let Selection::Field(field) = &selection.node else {
            return None;
        };
        let field = &field.node;
        if !field.arguments.is_empty() || !field.directives.is_empty() {
            return None;
        }
        let value = if field.name.node == "__typename" {
            Value::String(value.introspection_type_name().into_owned())
        } else {
            value.plain(ctx, field)?
        };
        // A key asked twice is the same field (validation), answered once.
        let key: &Name = &field.response_key().node;
        out.entry(key.clone()).or_insert(value);
    }
    Some(if out.is_empty() {
        Value::Null
    } else {
        Value::Object(out)
    })
}

/// [`PlainFields`] for a `SimpleObject` whose listed fields are plain:
/// each by its GraphQL name, answered as its resolver does (`scalar`: by
/// the value's scalar type; `enumeration`: as its enum item; `list`: a
/// list of plain objects; `strings`: a list of strings). Fields left out
/// (a `ComplexObject`'s) make a selection that asks them go through the
/// resolvers.
macro_rules! plain_object {
    ($ty:ty { $($name:literal: $kind:ident $field:ident),* $(,)? }) => {
        impl $crate::graphql::plain::PlainFields for $ty {
            #[cfg(test)]
            const FIELDS: &'static [&'static str] = &[$($name),*];

            fn plain(
                &self,
                ctx: &async_graphql::ContextSelectionSet<'_>,
                field: &async_graphql::parser::types::Field,
            ) -> Option<async_graphql::Value> {
                let _ = ctx;
                match field.name.node.as_str() {
                    $($name => $crate::graphql::plain::plain_object!(@$kind self.$field, ctx, field),)*
                    _ => None,
                }
            }
        }
    };
    (@scalar $value:expr, $ctx:ident, $field:ident) => {
        Some(async_graphql::ScalarType::to_value(&$value))
    };
    (@enumeration $value:expr, $ctx:ident, $field:ident) => {
        Some(async_graphql::resolver_utils::enum_value($value))
    };
    (@list $value:expr, $ctx:ident, $field:ident) => {
        $crate::graphql::plain::list(&$value, $ctx, $field)
    };
    (@strings $value:expr, $ctx:ident, $field:ident) => {
        Some(async_graphql::Value::List(
            $value.iter().map(|s| async_graphql::Value::String(s.clone())).collect(),
        ))
    };
}
pub(crate) use plain_object;

impl<T: PlainFields> OutputType for Plain<T> {
    super::boxed::schema_type_of_inner!(T);

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match answer(&self.0, ctx) {
            Some(value) => Ok(value),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, Value};
    use srs_domain::model::{
        DataPoints as DomainDataPoints, Lifecycle, RecordingAction, RecordingDecision,
        RecordingMode, SessionEventType, Severity,
    };
    use srs_domain::time::Timestamp;
    use srs_projections::models::catalogue::{RecordingRow, RestrictionInfo};
    use srs_projections::models::Visibility;
    use uuid::Uuid;

    use super::{Plain, PlainFields};
    use crate::graphql::types::{
        DataPoints, PageInfo, Recording, RecordingConnection, RecordingEdge,
    };
    use async_graphql::parser::types::Field;
    use async_graphql::ContextSelectionSet;

    /// Answers `a` as 2 when plain, 1 through its resolver.
    struct Probe;

    #[Object]
    impl Probe {
        async fn a(&self) -> i32 {
            1
        }
        async fn b(&self, x: i32) -> i32 {
            x
        }
    }

    impl PlainFields for Probe {
        fn plain(&self, _: &ContextSelectionSet<'_>, field: &Field) -> Option<Value> {
            (field.name.node == "a").then(|| Value::from(2))
        }
    }

    struct ProbeQuery;

    #[Object]
    impl ProbeQuery {
        async fn p(&self) -> Plain<Probe> {
            Plain(Probe)
        }
    }

    async fn run<Q: async_graphql::ObjectType + 'static>(query: Q, q: &str) -> serde_json::Value {
        let schema = Schema::new(query, EmptyMutation, EmptySubscription);
        let response = schema.execute(q).await;
        assert!(response.errors.is_empty(), "{q}: {:?}", response.errors);
        response.data.into_json().unwrap()
    }

    #[tokio::test]
    async fn only_a_selection_of_plain_fields_is_answered_in_one_pass() {
        let plain = run(ProbeQuery, "{ p { a x: a __typename } }").await;
        assert_eq!(
            plain,
            serde_json::json!({"p": {"a": 2, "x": 2, "__typename": "Probe"}})
        );
        // A field with arguments, a fragment: the resolvers answer.
        let mixed = run(ProbeQuery, "{ p { a b(x: 5) } }").await;
        assert_eq!(mixed, serde_json::json!({"p": {"a": 1, "b": 5}}));
        let fragment = run(ProbeQuery, "{ p { ... on Probe { a } } }").await;
        assert_eq!(fragment, serde_json::json!({"p": {"a": 1}}));
    }

    const PLAIN: &str = "id siteId serverId sessionId part previousRecordingId user \
        domain groups clientName clientIp host deliveryGroup applications startedAt \
        endedAt durationSec live sizeBytes restricted archived deleted eventCount \
        commentCount plays mode lifecycle maxSeverity __typename";

    /// Every field of `dataPoints` but `performance`.
    const DATA_POINTS: &str = "dataPoints { durationMs eventCount eventsByType { type count } \
        detectionCount detectionsBySeverity { severity count } sizeBytes applications idleMs \
        lastOffsetMs __typename }";

    fn rows() -> Vec<Arc<RecordingRow>> {
        let base = RecordingRow {
            id: Uuid::from_u128(0x7ec0_0001),
            site_id: Uuid::from_u128(1),
            server_id: Uuid::from_u128(2),
            session_id: "session-1".into(),
            part: 1,
            previous_recording_id: None,
            user: "CORP\\ann \"the\" admin".into(),
            domain: None,
            groups: vec![],
            client_name: None,
            client_ip: None,
            host: "VDA-001".into(),
            delivery_group: None,
            mode: RecordingMode::ScreenAndEvents,
            decision: RecordingDecision {
                policy_id: Uuid::from_u128(9),
                policy_name: "Record all".into(),
                rule: None,
                rule_index: None,
                action: RecordingAction::RecordScreenAndEvents,
                notify: true,
                lossy: false,
                audio: false,
            },
            lifecycle: Lifecycle::Live,
            started_at: Timestamp(1_700_000_000_123_456),
            restriction: None,
            max_severity: None,
            comment_count: 0,
            plays: 0,
            points: DomainDataPoints::default(),
        };
        let mut ended = base.clone();
        ended.id = Uuid::from_u128(0x7ec0_0002);
        ended.part = 3;
        ended.previous_recording_id = Some(Uuid::from_u128(0x7ec0_0003));
        ended.domain = Some("CORP".into());
        ended.groups = vec!["CORP\\Staff".into(), "CORP\\Ops".into()];
        ended.client_name = Some("PC-0001".into());
        ended.client_ip = Some("10.0.0.1".into());
        ended.delivery_group = Some("Finance".into());
        ended.lifecycle = Lifecycle::Archived;
        ended.restriction = Some(RestrictionInfo {
            reason: "HR case".into(),
            by: "admin".into(),
            at: Timestamp(1_700_000_100_000_000),
        });
        ended.comment_count = 4;
        ended.plays = 7;
        ended.points.ended_at = Some(Timestamp(1_700_003_600_000_000));
        ended.points.duration_ms = 3_600_999;
        ended.points.event_count = 12;
        ended.points.size_bytes = 5_000_000_000;
        ended.points.applications = ["Excel".to_string(), "Word".to_string()].into();
        ended.points.events_by_type = [(SessionEventType::UsbMassStorage, 2)].into();
        ended.points.detections_by_severity = [(Severity::High, 1)].into();
        ended.points.detection_count = 1;
        ended.points.idle_ms = 60_000;
        ended.max_severity = Some(Severity::High);
        let mut deleted = ended.clone();
        deleted.id = Uuid::from_u128(0x7ec0_0004);
        deleted.lifecycle = Lifecycle::Deleted;
        deleted.comment_count = u64::MAX;
        vec![Arc::new(base), Arc::new(ended), Arc::new(deleted)]
    }

    struct RecordingsQuery(Vec<Arc<RecordingRow>>);

    #[Object]
    impl RecordingsQuery {
        async fn plain(&self) -> Vec<Plain<Recording>> {
            let rows = self.0.iter().cloned();
            rows.map(|r| Plain(Recording::new(r, Visibility::Playable)))
                .collect()
        }
        async fn resolved(&self) -> Vec<Recording> {
            let rows = self.0.iter().cloned();
            rows.map(|r| Recording::new(r, Visibility::Playable))
                .collect()
        }
        async fn plain_page(&self, total: bool) -> Plain<RecordingConnection> {
            Plain(self.page(total))
        }
        async fn resolved_page(&self, total: bool) -> RecordingConnection {
            self.page(total)
        }
    }

    impl RecordingsQuery {
        fn page(&self, total: bool) -> RecordingConnection {
            RecordingConnection {
                edges: (self.0.iter().enumerate())
                    .map(|(n, row)| RecordingEdge {
                        cursor: format!("cursor-{n}"),
                        node: Plain(Recording::new(row.clone(), Visibility::Playable)),
                    })
                    .collect(),
                page_info: PageInfo {
                    has_next_page: total,
                    end_cursor: total.then(|| "cursor-2".into()),
                },
                total_count: total.then_some(3),
                as_of: 0,
            }
        }
    }

    #[tokio::test]
    async fn plain_fields_answer_what_their_resolvers_answer() {
        let recording = Recording::new(rows()[0].clone(), Visibility::Playable);
        for name in PLAIN.split_whitespace().filter(|n| *n != "__typename") {
            assert!(recording.plain_value(name).is_some(), "{name} is not plain");
        }
        let q = format!("{{ plain {{ {PLAIN} }} resolved {{ {PLAIN} }} }}");
        let answer = run(RecordingsQuery(rows()), &q).await;
        assert_eq!(answer["plain"].as_array().map(Vec::len), Some(3));
        assert_eq!(answer["plain"], answer["resolved"]);
        assert_eq!(answer["plain"][0]["mode"], "SCREEN_AND_EVENTS");
        assert_eq!(answer["plain"][1]["maxSeverity"], "HIGH");
        // Aliased and asked twice, beside a field that is not plain.
        let q = "{ plain { a: user b: user user decision { action } } \
                 resolved { a: user b: user user decision { action } } }";
        let answer = run(RecordingsQuery(rows()), q).await;
        assert_eq!(answer["plain"], answer["resolved"]);
        assert_eq!(
            answer["plain"][0]["decision"]["action"],
            "RECORD_SCREEN_AND_EVENTS"
        );
        // A recording's figures.
        let q = format!("{{ plain {{ id {DATA_POINTS} }} resolved {{ id {DATA_POINTS} }} }}");
        let answer = run(RecordingsQuery(rows()), &q).await;
        assert_eq!(answer["plain"], answer["resolved"]);
        assert_eq!(
            answer["plain"][1]["dataPoints"]["eventsByType"][0]["type"],
            "USB_MASS_STORAGE"
        );
        let schema = Schema::new(RecordingsQuery(rows()), EmptyMutation, EmptySubscription);
        let fields = schema
            .execute("{ __type(name: \"DataPoints\") { fields { name } } }")
            .await
            .data
            .into_json()
            .unwrap();
        let mut fields: Vec<&str> = fields["__type"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["name"].as_str())
            .filter(|f| *f != "performance")
            .collect();
        let mut plain = DataPoints::FIELDS.to_vec();
        fields.sort_unstable();
        plain.sort_unstable();
        assert_eq!(plain, fields);
    }

    /// The console's list of recordings asks plain fields only, so its
    /// pages are answered in one pass.
    #[test]
    fn the_consoles_recordings_page_is_plain() {
        let recording = Recording::new(rows()[1].clone(), Visibility::Playable);
        let console = include_str!("../../../console/src/pages/recordings.tsx");
        let node = console
            .split("edges { cursor node {")
            .nth(1)
            .and_then(|rest| rest.split("dataPoints {").next())
            .expect("the console's recordings query");
        let names: Vec<&str> = node.split_whitespace().collect();
        assert!(names.len() > 5, "{node}");
        for name in names {
            assert!(recording.plain_value(name).is_some(), "{name} is not plain");
        }
    }

    #[tokio::test]
    async fn a_plain_page_answers_what_its_resolvers_answer() {
        for total in [true, false] {
            for node in [PLAIN, "id mode", "u: user"] {
                let page = format!(
                    "(total: {total}) {{ totalCount __typename pageInfo {{ hasNextPage \
                     endCursor __typename }} edges {{ cursor __typename node {{ {node} }} }} }}"
                );
                let q = format!("{{ plainPage{page} resolvedPage{page} }}");
                let answer = run(RecordingsQuery(rows()), &q).await;
                assert_eq!(
                    answer["plainPage"]["edges"].as_array().map(Vec::len),
                    Some(3)
                );
                assert_eq!(answer["plainPage"], answer["resolvedPage"], "{q}");
            }
        }
    }
}
