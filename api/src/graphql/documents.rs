//! Parsed and validated documents, kept so that a client repeating an
//! operation pays for neither again.
//!
//! Parsing is a pure function of the query text, and validation (the
//! GraphQL rules, depth and complexity) a pure function of the schema, the
//! parsed document, the operation name and the variables. So:
//!
//! - the parsed document is kept by its query text and handed to the
//!   schema ([`async_graphql::Request::set_parsed_query`]) instead of
//!   parsing the text again;
//! - a request body (query, operation name and variables, byte for byte)
//!   that once passed the full ([`async_graphql::ValidationMode::Strict`]) validation is
//!   marked, and is from then on executed by a twin of the schema that runs
//!   the fast validation only (fragment cycles, depth and complexity,
//!   which give the same answer as the first time). A body is marked only
//!   after the strict schema answered it with no error outside a field
//!   ([`Documents::record`]): parse and validation errors never carry a
//!   path, so a document that fails validation is never marked and keeps
//!   failing with the same errors.
//!
//! Before either, the text is bounded and the document sized
//! ([`super::cost`]); a refusal is kept like a parsed document, so a
//! repeated over-budget document costs a map lookup.
//!
//! Nothing about the caller, the data or the answer is kept: authorization,
//! visibility and `atLeast` run for every request as before.
//!
//! Both maps are bounded ([`MAX_DOCUMENTS`], [`MAX_VALIDATED`], and only
//! bodies up to [`MAX_CACHED_BYTES`]); a full map is emptied, so a client
//! sending ever new documents gets the uncached cost, never unbounded memory.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use axum::body::Bytes;

use super::cost::{self, Cost};
use crate::error::ApiError;
use crate::state::Limits;

/// The most parsed documents kept.
pub const MAX_DOCUMENTS: usize = 256;
/// The most validated request bodies kept.
pub const MAX_VALIDATED: usize = 1024;
/// The largest query text or request body kept, in bytes.
pub const MAX_CACHED_BYTES: usize = 16 * 1024;

/// A query text parsed and sized, or refused by its size.
type Sized = Result<(ExecutableDocument, Cost), ApiError>;

/// The cache of parsed documents and validated request bodies.
#[derive(Debug, Default)]
pub struct Documents {
    parsed: Mutex<HashMap<Arc<str>, Arc<Sized>>>,
    validated: Mutex<HashSet<Bytes>>,
}

/// How a request is to be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// This exact body passed the strict validation before: the fast
    /// schema may run it.
    Done,
    /// Not known to be valid: the strict schema runs it (and
    /// [`Documents::record`] marks it if it passed).
    Needed,
}

/// What [`Documents::prepare`] found out about a request it let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub validation: Validation,
    /// The document's size; `None` when the text does not parse (the
    /// schema then reports the syntax error).
    pub cost: Option<Cost>,
    /// The type of the operation that will run, when known.
    pub operation: Option<OperationType>,
}

impl Documents {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Bounds, parses and sizes `request`'s query (see [`super::cost`]):
    /// a text or document over `limits` is refused with `VALIDATION`
    /// before anything else looks at it. A document within them is handed
    /// to the request (from the cache, or parsed now and kept) so the
    /// schema does not parse it again. A text that does not parse is left
    /// to the schema, which reports the syntax error as it always does.
    pub fn document(
        &self,
        request: &mut async_graphql::Request,
        limits: &Limits,
    ) -> Result<Prepared, ApiError> {
        cost::check_text(&request.query, limits)?;
        let Some(sized) = self.sized(&request.query, limits) else {
            return Ok(Prepared {
                validation: Validation::Needed,
                cost: None,
                operation: None,
            });
        };
        let (document, cost) = sized.as_ref().as_ref().map_err(Clone::clone)?;
        let operation = operation_type(document, request.operation_name.as_deref());
        request.set_parsed_query(document.clone());
        Ok(Prepared {
            validation: Validation::Needed,
            cost: Some(*cost),
            operation,
        })
    }

    /// [`Documents::document`], and whether `body`, the request's bytes,
    /// is already validated.
    pub fn prepare(
        &self,
        request: &mut async_graphql::Request,
        body: &Bytes,
        limits: &Limits,
    ) -> Result<Prepared, ApiError> {
        let mut prepared = self.document(request, limits)?;
        let done = prepared.cost.is_some()
            && body.len() <= MAX_CACHED_BYTES
            && self
                .validated
                .lock()
                .is_ok_and(|set| set.contains(body.as_ref()));
        if done {
            prepared.validation = Validation::Done;
        }
        Ok(prepared)
    }

    /// `query` parsed and sized, from the cache or now (and kept when
    /// small); `None` when it does not parse.
    fn sized(&self, query: &str, limits: &Limits) -> Option<Arc<Sized>> {
        let cacheable = query.len() <= MAX_CACHED_BYTES;
        if cacheable {
            let cached = self
                .parsed
                .lock()
                .ok()
                .and_then(|map| map.get(query).cloned());
            if cached.is_some() {
                return cached;
            }
        }
        let document = async_graphql::parser::parse_query(query).ok()?;
        let sized = Arc::new(cost::check(&document, limits).map(|cost| (document, cost)));
        if cacheable {
            if let Ok(mut map) = self.parsed.lock() {
                if map.len() >= MAX_DOCUMENTS {
                    map.clear();
                }
                map.insert(Arc::from(query), sized.clone());
            }
        }
        Some(sized)
    }

    /// Records the strict schema's answer to `body`: the body is marked
    /// validated when every error of the answer (if any) belongs to a
    /// field, which means parsing and validation passed and execution ran.
    pub fn record(&self, body: &Bytes, response: &async_graphql::Response) {
        if body.len() > MAX_CACHED_BYTES || response.errors.iter().any(|e| e.path.is_empty()) {
            return;
        }
        if let Ok(mut set) = self.validated.lock() {
            if set.len() >= MAX_VALIDATED {
                set.clear();
            }
            set.insert(body.clone());
        }
    }

    /// How many bodies are marked validated (for tests).
    pub fn validated_len(&self) -> usize {
        self.validated.lock().map_or(0, |set| set.len())
    }
}

/// The type of the operation `name` selects in `document` (the only one
/// when `name` is `None`).
pub fn operation_type(document: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    use async_graphql::parser::types::DocumentOperations;
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
        (DocumentOperations::Multiple(map), Some(name)) => map.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(map), None) if map.len() == 1 => {
            map.values().next().map(|op| op.node.ty)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{PathSegment, Response, ServerError, Value};

    use super::*;

    fn request(query: &str) -> async_graphql::Request {
        async_graphql::Request::new(query)
    }

    #[test]
    fn only_answers_without_request_level_errors_mark_a_body() {
        let documents = Documents::default();
        let body = Bytes::from_static(b"{\"query\":\"{ me { name } }\"}");
        let mut refused = Response::new(Value::Null);
        refused.errors.push(ServerError::new("Unknown field", None));
        documents.record(&body, &refused);
        assert_eq!(
            documents
                .prepare(&mut request("{ me { name } }"), &body, &Limits::default())
                .unwrap()
                .validation,
            Validation::Needed
        );

        let mut forbidden = Response::new(Value::Null);
        let mut error = ServerError::new("forbidden", None);
        error.path = vec![PathSegment::Field("me".into())];
        forbidden.errors.push(error);
        documents.record(&body, &forbidden);
        assert_eq!(
            documents
                .prepare(&mut request("{ me { name } }"), &body, &Limits::default())
                .unwrap()
                .validation,
            Validation::Done
        );
    }

    #[test]
    fn the_maps_stay_bounded() {
        let documents = Documents::default();
        let ok = Response::new(Value::Null);
        for n in 0..=MAX_VALIDATED {
            let query = format!("{{ me {{ name }} }} # {n}");
            let body = Bytes::from(format!("{{\"query\":\"{query}\"}}"));
            documents
                .prepare(&mut request(&query), &body, &Limits::default())
                .unwrap();
            documents.record(&body, &ok);
        }
        assert!(documents.validated_len() <= MAX_VALIDATED);
        assert!(documents.parsed.lock().unwrap().len() <= MAX_DOCUMENTS);
        let huge = Bytes::from(vec![b' '; MAX_CACHED_BYTES + 1]);
        documents.record(&huge, &ok);
        assert_eq!(
            documents
                .prepare(&mut request("{ me { name } }"), &huge, &Limits::default())
                .unwrap()
                .validation,
            Validation::Needed
        );
    }

    #[test]
    fn a_kept_document_is_the_parsed_text() {
        let documents = Documents::default();
        let body = Bytes::from_static(b"{}");
        let mut first = request("query A { me { name } }");
        documents
            .prepare(&mut first, &body, &Limits::default())
            .unwrap();
        let mut second = request("query A { me { name } }");
        documents
            .prepare(&mut second, &body, &Limits::default())
            .unwrap();
        let parsed = async_graphql::parser::parse_query("query A { me { name } }").unwrap();
        assert_eq!(
            format!("{:?}", second.parsed_query().unwrap()),
            format!("{parsed:?}")
        );
    }

    #[test]
    fn documents_over_budget_are_refused_and_the_refusal_is_kept() {
        let documents = Documents::default();
        let limits = Limits::default();
        let fan_out =
            "query { ...A } fragment A on Query { ...B ...B ...B ...B ...B ...B ...B ...B } \
             fragment B on Query { ...C ...C ...C ...C ...C ...C ...C ...C } \
             fragment C on Query { ...D ...D ...D ...D ...D ...D ...D ...D } \
             fragment D on Query { ...E ...E ...E ...E ...E ...E ...E ...E } \
             fragment E on Query { __typename }";
        let body = Bytes::from_static(b"{}");
        for _ in 0..2 {
            let error = documents
                .prepare(&mut request(fan_out), &body, &limits)
                .unwrap_err();
            assert_eq!(error.code, crate::error::Code::Validation);
        }
        assert_eq!(documents.parsed.lock().unwrap().len(), 1);
        // A text too large to keep is sized all the same.
        let flat = format!(
            "{{ {} }}",
            "abcdef ".repeat(limits.max_selections as usize + 1)
        );
        assert!(flat.len() > MAX_CACHED_BYTES);
        assert!(documents
            .prepare(&mut request(&flat), &body, &limits)
            .is_err());
        // Within budget: parsed, sized and handed over.
        let mut fine = request("{ me { name } }");
        let prepared = documents.prepare(&mut fine, &body, &limits).unwrap();
        assert_eq!(prepared.cost.map(|c| c.fields), Some(2));
        assert_eq!(prepared.operation, Some(OperationType::Query));
        assert!(fine.parsed_query().is_ok());
    }
}
