//! Parsed documents, kept so that a client repeating an operation does
//! not pay for parsing and sizing it again.
//!
//! Parsing is a pure function of the query text, and so is the document's
//! size ([`super::cost`]). The parsed document is kept by its query text
//! and handed to the schema ([`async_graphql::Request::set_parsed_query`])
//! instead of parsing the text again; a refusal by size is kept like a
//! parsed document, so a repeated over-budget document costs a map lookup.
//! Validation and execution run on every request.
//!
//! Nothing about the caller, the data or the answer is kept: authorization,
//! visibility and `atLeast` run for every request.
//!
//! The map is bounded ([`MAX_DOCUMENTS`], and only texts up to
//! [`MAX_CACHED_BYTES`]); a full map is emptied, so a client sending ever
//! new documents gets the uncached cost, never unbounded memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{ExecutableDocument, OperationType};

use super::cost::{self, Cost};
use crate::error::ApiError;
use crate::state::Limits;

/// The most parsed documents kept.
pub const MAX_DOCUMENTS: usize = 256;
/// The largest query text kept, in bytes.
pub const MAX_CACHED_BYTES: usize = 16 * 1024;

/// A query text parsed and sized, or refused by its size.
type Sized = Result<(ExecutableDocument, Cost), ApiError>;

/// The cache of parsed documents.
#[derive(Debug, Default)]
pub struct Documents {
    parsed: Mutex<HashMap<Arc<str>, Arc<Sized>>>,
}

/// What [`Documents::document`] found out about a request it let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared {
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
                cost: None,
                operation: None,
            });
        };
        let (document, cost) = sized.as_ref().as_ref().map_err(Clone::clone)?;
        let operation = operation_type(document, request.operation_name.as_deref());
        request.set_parsed_query(document.clone());
        Ok(Prepared {
            cost: Some(*cost),
            operation,
        })
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
    use super::*;

    fn request(query: &str) -> async_graphql::Request {
        async_graphql::Request::new(query)
    }

    #[test]
    fn the_map_stays_bounded() {
        let documents = Documents::default();
        for n in 0..=MAX_DOCUMENTS {
            let query = format!("{{ me {{ name }} }} # {n}");
            documents
                .document(&mut request(&query), &Limits::default())
                .unwrap();
        }
        assert!(documents.parsed.lock().unwrap().len() <= MAX_DOCUMENTS);
    }

    #[test]
    fn a_kept_document_is_the_parsed_text() {
        let documents = Documents::default();
        let mut first = request("query A { me { name } }");
        documents.document(&mut first, &Limits::default()).unwrap();
        let mut second = request("query A { me { name } }");
        documents.document(&mut second, &Limits::default()).unwrap();
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
        for _ in 0..2 {
            let error = documents
                .document(&mut request(fan_out), &limits)
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
        assert!(documents.document(&mut request(&flat), &limits).is_err());
        // Within budget: parsed, sized and handed over.
        let mut fine = request("{ me { name } }");
        let prepared = documents.document(&mut fine, &limits).unwrap();
        assert_eq!(prepared.cost.map(|c| c.fields), Some(2));
        assert_eq!(prepared.operation, Some(OperationType::Query));
        assert!(fine.parsed_query().is_ok());
    }
}
