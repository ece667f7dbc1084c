//! What a GraphQL document costs, sized once before anything else runs.
//!
//! async-graphql's own checks (the recursion depth and directive checks at
//! parse time, the depth and complexity visitors of validation) walk a
//! fragment again at every spread of it. A document of ten fragments that
//! each spread the next one ten times is 1.7 KB of text and 10^10 fields
//! after expansion: those walks never finish, and the worker running them
//! is lost to every other client. So every document is sized here first,
//! in time linear in its text:
//!
//! - each fragment is sized once and its size reused at every spread
//!   (memoised), with saturating arithmetic, so the figures are exact up to
//!   `u64::MAX` and never overflow however the spreads multiply;
//! - a fragment that spreads itself (directly or through others) is
//!   refused: the spec forbids cycles, and no figure would be finite;
//! - every operation of the document counts (async-graphql validates them
//!   all, whichever one runs).
//!
//! [`check`] refuses a document over [`Limits`] with `VALIDATION` before
//! async-graphql sees it: too many selections after expansion, too deep,
//! too much nesting (fragments and inline fragments count as a level, as
//! in async-graphql's recursion check), too many aliases, or more than a
//! few introspection roots (`__schema`, `__type`: each answers a large part
//! of the schema, and 1000 aliases of `__schema` cost seconds).
//!
//! The query text itself is bounded before parsing ([`check_text`]): its
//! length (parsing is linear in it, and the body limit is far larger
//! because of variables), and how deeply its brackets nest (async-graphql's
//! parser bounds nested selection sets itself, after its grammar has
//! recursed through the text; refusing deep nesting first keeps that
//! recursion shallow whatever the nesting is made of).

use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::Positioned;

use crate::error::ApiError;
use crate::state::Limits;

/// The most async-graphql's recursion check allows (set on the schema
/// too, see `graphql::builder`): selection sets within selection sets,
/// fragment spreads and inline fragments each counting as one level.
pub const MAX_NESTING: u32 = 64;

/// The deepest the brackets (`{`, `[`, `(`) of a query text may nest.
/// Legitimate documents stay far below: selection sets nest at most
/// [`MAX_NESTING`] deep and input values a few levels.
pub const MAX_TEXT_NESTING: usize = 128;

/// Root fields that legitimately run long (they walk the whole log):
/// a request with one of them gets the long time budget.
const LONG_RUNNING_ROOTS: [&str; 2] = ["verify", "rebuildProjections"];

/// The size of a document, every operation of it together, fragments
/// expanded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Fields after expanding every fragment spread (`__typename`
    /// included).
    pub fields: u64,
    /// Selections after expansion: fields, fragment spreads and inline
    /// fragments (what async-graphql's own walks visit).
    pub selections: u64,
    /// Fields with an alias, after expansion.
    pub aliases: u64,
    /// `__schema` and `__type` fields, after expansion.
    pub introspection: u64,
    /// The deepest nesting of fields (async-graphql's depth: `{ me { name } }` is 2).
    pub depth: u32,
    /// The deepest nesting of selection sets, fragment spreads and inline
    /// fragments (async-graphql's recursion depth).
    pub nesting: u32,
    /// Whether a root field is one of the long-running admin operations.
    pub long_running: bool,
}

/// The size of one selection set (or fragment): what one spread of it adds.
#[derive(Clone, Copy, Debug, Default)]
struct Size {
    fields: u64,
    selections: u64,
    aliases: u64,
    introspection: u64,
    depth: u32,
    nesting: u32,
}

impl Size {
    fn add(&mut self, other: &Size) {
        self.fields = self.fields.saturating_add(other.fields);
        self.selections = self.selections.saturating_add(other.selections);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.introspection = self.introspection.saturating_add(other.introspection);
        self.depth = self.depth.max(other.depth);
        self.nesting = self.nesting.max(other.nesting);
    }
}

/// Why a document cannot be sized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeError {
    /// The fragment spreads itself, directly or through others.
    FragmentCycle(String),
}

/// The fragments' sizes, each computed once.
struct Sizer<'a> {
    doc: &'a ExecutableDocument,
    memo: HashMap<&'a str, Memo>,
}

#[derive(Clone, Copy)]
enum Memo {
    /// Being sized: meeting it again is a cycle.
    Visiting,
    Done(Size),
}

impl<'a> Sizer<'a> {
    fn selection_set(&mut self, set: &'a Positioned<SelectionSet>) -> Result<Size, SizeError> {
        let mut size = Size::default();
        for selection in &set.node.items {
            let item = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    let mut item = if field.selection_set.node.items.is_empty() {
                        Size::default()
                    } else {
                        let mut children = self.selection_set(&field.selection_set)?;
                        children.nesting = children.nesting.saturating_add(1);
                        children
                    };
                    item.fields = item.fields.saturating_add(1);
                    item.selections = item.selections.saturating_add(1);
                    item.depth = item.depth.saturating_add(1);
                    if field.alias.is_some() {
                        item.aliases = item.aliases.saturating_add(1);
                    }
                    if name == "__schema" || name == "__type" {
                        item.introspection = item.introspection.saturating_add(1);
                    }
                    item
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let mut item = match self.doc.fragments.get(name) {
                        // Unknown: validation reports it.
                        None => Size::default(),
                        Some(fragment) => self.fragment(name, fragment)?,
                    };
                    item.selections = item.selections.saturating_add(1);
                    item.nesting = item.nesting.saturating_add(1);
                    item
                }
                Selection::InlineFragment(inline) => {
                    let mut item = self.selection_set(&inline.node.selection_set)?;
                    item.selections = item.selections.saturating_add(1);
                    item.nesting = item.nesting.saturating_add(1);
                    item
                }
            };
            size.add(&item);
        }
        Ok(size)
    }

    fn fragment(
        &mut self,
        name: &'a str,
        fragment: &'a Positioned<FragmentDefinition>,
    ) -> Result<Size, SizeError> {
        match self.memo.get(name) {
            Some(Memo::Done(size)) => return Ok(*size),
            Some(Memo::Visiting) => return Err(SizeError::FragmentCycle(name.to_owned())),
            None => {}
        }
        self.memo.insert(name, Memo::Visiting);
        let size = self.selection_set(&fragment.node.selection_set)?;
        self.memo.insert(name, Memo::Done(size));
        Ok(size)
    }

    /// Whether `set`'s root fields (through fragments) include a
    /// long-running one. Each fragment is looked into once.
    fn long_running(&self, set: &'a Positioned<SelectionSet>, seen: &mut Vec<&'a str>) -> bool {
        set.node
            .items
            .iter()
            .any(|selection| match &selection.node {
                Selection::Field(field) => {
                    LONG_RUNNING_ROOTS.contains(&field.node.name.node.as_str())
                }
                Selection::InlineFragment(inline) => {
                    self.long_running(&inline.node.selection_set, seen)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if seen.contains(&name) {
                        return false;
                    }
                    seen.push(name);
                    self.doc.fragments.get(name).is_some_and(|fragment| {
                        self.long_running(&fragment.node.selection_set, seen)
                    })
                }
            })
    }
}

/// Sizes `doc`: every operation, fragments expanded, each fragment once.
pub fn size(doc: &ExecutableDocument) -> Result<Cost, SizeError> {
    let mut sizer = Sizer {
        doc,
        memo: HashMap::with_capacity(doc.fragments.len()),
    };
    let mut total = Size::default();
    let mut long_running = false;
    let operations: Vec<_> = match &doc.operations {
        DocumentOperations::Single(operation) => vec![operation],
        DocumentOperations::Multiple(map) => map.values().collect(),
    };
    for operation in operations {
        let set = &operation.node.selection_set;
        total.add(&sizer.selection_set(set)?);
        long_running |= sizer.long_running(set, &mut Vec::new());
    }
    // Fragments no operation spreads are still walked by validation: size
    // them too (they add nothing to the totals, but a cycle among them is
    // refused all the same).
    for (name, fragment) in &doc.fragments {
        sizer.fragment(name.as_str(), fragment)?;
    }
    Ok(Cost {
        fields: total.fields,
        selections: total.selections,
        aliases: total.aliases,
        introspection: total.introspection,
        depth: total.depth,
        nesting: total.nesting,
        long_running,
    })
}

/// Sizes `doc` and refuses it with `VALIDATION` when it is over `limits`.
pub fn check(doc: &ExecutableDocument, limits: &Limits) -> Result<Cost, ApiError> {
    let cost = size(doc).map_err(|SizeError::FragmentCycle(name)| {
        ApiError::validation(format!(
            "the fragment `{name}` spreads itself (directly or through other fragments)"
        ))
    })?;
    if cost.selections > limits.max_selections {
        return Err(ApiError::validation(format!(
            "the query has {} selections once its fragments are expanded; at most {} are allowed",
            cost.selections, limits.max_selections
        )));
    }
    if cost.depth as usize > limits.max_depth {
        return Err(ApiError::validation(format!(
            "the query nests fields {} deep; at most {} is allowed",
            cost.depth, limits.max_depth
        )));
    }
    if cost.nesting > MAX_NESTING {
        return Err(ApiError::validation(format!(
            "the query nests selection sets and fragments {} deep; at most {MAX_NESTING} is allowed",
            cost.nesting
        )));
    }
    if cost.aliases > limits.max_aliases {
        return Err(ApiError::validation(format!(
            "the query has {} aliased fields once its fragments are expanded; at most {} are allowed",
            cost.aliases, limits.max_aliases
        )));
    }
    if cost.introspection > limits.max_introspection {
        return Err(ApiError::validation(format!(
            "the query asks for `__schema` or `__type` {} times; at most {} are allowed",
            cost.introspection, limits.max_introspection
        )));
    }
    Ok(cost)
}

/// Refuses a query text that is too long or nests its brackets too
/// deeply, before it is parsed. Strings and comments are skipped, so
/// brackets inside them do not count.
pub fn check_text(query: &str, limits: &Limits) -> Result<(), ApiError> {
    if query.len() > limits.max_query_bytes {
        return Err(ApiError::validation(format!(
            "the query text is {} bytes; at most {} are allowed (pass large inputs as variables)",
            query.len(),
            limits.max_query_bytes
        )));
    }
    let nesting = bracket_nesting(query);
    if nesting > MAX_TEXT_NESTING {
        return Err(ApiError::validation(format!(
            "the query text nests brackets more than {MAX_TEXT_NESTING} deep"
        )));
    }
    Ok(())
}

/// The deepest nesting of `{`, `[` and `(` in `text`, outside strings,
/// block strings and comments (stops counting past [`MAX_TEXT_NESTING`]).
fn bracket_nesting(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped triple quote inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > MAX_TEXT_NESTING {
                    return deepest;
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use async_graphql::parser::parse_query;

    use super::*;
    use crate::error::Code;

    fn cost(query: &str) -> Cost {
        size(&parse_query(query).expect("parses")).expect("sizes")
    }

    /// Ten fragments, each spreading the next `fan` times; the last selects
    /// `leaf`.
    fn fan_out(levels: usize, fan: usize, leaf: &str) -> String {
        let mut text = String::from("query { ...F0 }\n");
        for level in 0..levels {
            let body = if level + 1 == levels {
                leaf.to_owned()
            } else {
                (0..fan)
                    .map(|n| format!("a{n}: __typename ...F{}", level + 1))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            text.push_str(&format!("fragment F{level} on Query {{ {body} }}\n"));
        }
        text
    }

    #[test]
    fn plain_queries_are_counted_exactly() {
        let c = cost("{ me { name role } sites { id servers { id name } } }");
        assert_eq!(c.fields, 8);
        assert_eq!(c.selections, 8);
        assert_eq!(c.depth, 3);
        assert_eq!(c.nesting, 2);
        assert_eq!(c.aliases, 0);
        assert_eq!(c.introspection, 0);
        assert!(!c.long_running);
    }

    #[test]
    fn fragments_count_at_every_spread() {
        let c = cost(
            "query { a: me { ...N } b: me { ...N } ... on Query { __typename } }
             fragment N on Principal { name role }",
        );
        // a, b, 2 x (name, role), __typename.
        assert_eq!(c.fields, 7);
        // + two spreads and one inline fragment.
        assert_eq!(c.selections, 10);
        assert_eq!(c.aliases, 2);
        assert_eq!(c.depth, 2);
        // me { ...N { name } }: the selection set and the spread are levels.
        assert_eq!(c.nesting, 2);
    }

    #[test]
    fn every_operation_counts() {
        let c = cost("query A { me { name } } query B { __schema { queryType { name } } }");
        assert_eq!(c.fields, 5);
        assert_eq!(c.introspection, 1);
        assert_eq!(c.depth, 3);
    }

    #[test]
    fn a_ten_by_ten_chain_is_sized_at_once_and_exactly() {
        let text = fan_out(10, 10, "__typename");
        let doc = parse_query(&text).unwrap();
        let started = Instant::now();
        let c = size(&doc).unwrap();
        // Linear in the text: far below a millisecond; 10^10 walks would
        // take minutes. The bound is generous for a loaded machine.
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        // Level k contributes 10^k aliased fields (k = 1..9) plus the leaf's 10^9.
        let aliased: u64 = (1..=9).map(|k| 10u64.pow(k)).sum();
        assert_eq!(c.aliases, aliased);
        assert_eq!(c.fields, aliased + 10u64.pow(9));
        // Spreads: 1 at the root, then 10^k at level k.
        assert_eq!(c.selections, c.fields + 1 + aliased);
        assert_eq!(c.depth, 1);
        assert_eq!(c.nesting, 10);
    }

    #[test]
    fn huge_fan_outs_saturate_instead_of_overflowing() {
        let c = cost(&fan_out(30, 10, "__typename"));
        assert_eq!(c.fields, u64::MAX);
        assert_eq!(c.selections, u64::MAX);
    }

    #[test]
    fn fragment_cycles_are_refused_without_looping() {
        let doc = parse_query(
            "query { ...A } fragment A on Query { ...B } fragment B on Query { __typename ...A }",
        )
        .unwrap();
        assert!(matches!(size(&doc), Err(SizeError::FragmentCycle(_))));
        let unused =
            parse_query("query { __typename } fragment S on Query { __typename ...S }").unwrap();
        assert_eq!(size(&unused), Err(SizeError::FragmentCycle("S".into())));
        let error = check(&doc, &Limits::default()).unwrap_err();
        assert_eq!(error.code, Code::Validation);
    }

    #[test]
    fn unknown_fragments_are_left_to_validation() {
        let c = cost("query { ...Missing me { name } }");
        assert_eq!(c.fields, 2);
        assert_eq!(c.selections, 3);
    }

    #[test]
    fn long_running_roots_are_found_through_fragments() {
        assert!(cost("{ verify(fromPosition: 1) { intact } }").long_running);
        assert!(
            cost("mutation { ...R } fragment R on Mutation { rebuildProjections { events } }")
                .long_running
        );
        assert!(!cost("{ me { verify: name } }").long_running);
    }

    #[test]
    fn over_budget_documents_are_refused_with_validation() {
        let limits = Limits::default();
        let check_text_of = |text: &str| check(&parse_query(text).unwrap(), &limits);
        let refused = [
            fan_out(10, 10, "__typename"),
            fan_out(7, 10, "__typename"),
            format!(
                "{{ {} }}",
                (0..1000)
                    .map(|n| format!("s{n}: __schema {{ queryType {{ name }} }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            format!(
                "{{ {} }}",
                "__typename ".repeat(limits.max_selections as usize + 1)
            ),
            format!("{{ me {} }}", "{ a ".repeat(20) + &"}".repeat(20)),
        ];
        for text in &refused {
            let error = check_text_of(text).expect_err(&text[..text.len().min(80)]);
            assert_eq!(error.code, Code::Validation, "{}", error.message);
        }
        assert!(check_text_of("{ __schema { types { name } } me { name } }").is_ok());
        assert!(check_text_of(&fan_out(3, 10, "__typename")).is_ok());
    }

    #[test]
    fn query_texts_are_bounded_before_parsing() {
        let limits = Limits::default();
        assert!(check_text("{ me { name } }", &limits).is_ok());
        let long = format!(
            "{{ me {{ name }} }} #{}",
            "x".repeat(limits.max_query_bytes)
        );
        assert_eq!(
            check_text(&long, &limits).unwrap_err().code,
            Code::Validation
        );
        let deep = format!("{{ me(x: {}1{}) }}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            check_text(&deep, &limits).unwrap_err().code,
            Code::Validation
        );
        // Brackets in strings and comments do not count.
        let quoted = format!(
            "{{ me(x: \"{}\", y: \"\"\"{}\"\"\") {{ name }} }} # {}",
            "[".repeat(500),
            "{".repeat(500),
            "(".repeat(500)
        );
        assert!(check_text(&quoted, &limits).is_ok());
        assert_eq!(bracket_nesting("{ a { b(x: [1]) } }"), 4);
    }

    /// GraphiQL's introspection query (graphql-js `getIntrospectionQuery`)
    /// stays well within the budgets.
    #[test]
    fn graphiql_introspection_is_within_budget() {
        let type_ref = (0..9).fold("kind name".to_owned(), |inner, _| {
            format!("kind name ofType {{ {inner} }}")
        });
        let text = format!(
            "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }}
               subscriptionType {{ name }} types {{ ...FullType }}
               directives {{ name description locations args {{ ...InputValue }} }} }} }}
             fragment FullType on __Type {{ kind name description
               fields(includeDeprecated: true) {{ name description args {{ ...InputValue }}
                 type {{ ...TypeRef }} isDeprecated deprecationReason }}
               inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }}
               enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
               possibleTypes {{ ...TypeRef }} }}
             fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }}
             fragment TypeRef on __Type {{ {type_ref} }}"
        );
        let cost = check(&parse_query(&text).unwrap(), &Limits::default()).unwrap();
        assert_eq!(cost.introspection, 1);
        assert!(cost.depth <= 16, "{cost:?}");
        assert!(cost.selections < 500, "{cost:?}");
    }
}
