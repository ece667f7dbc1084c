//! The GraphQL schema of `API.md`, built without any transport.
//!
//! # Layout
//!
//! - `context`: [`RequestContext`], the caller of one request.
//! - `query`, `mutation`, `subscription`: the three roots.
//! - `types`: output types over read-model rows; `inputs`: input types and
//!   their checked conversion into domain values; `enums`: the domain's
//!   enums under the contract's names; `convert`: IDs, times, page sizes,
//!   string lengths; `maintenance`: the `verify` query and the `rebuildProjections`
//!   mutation; `holds`: legal holds (types, inputs, resolvers' bodies);
//!   `agent`: what a server's agent needs (its configuration, pushed
//!   response actions, its recordings' stored chunks, last heartbeats);
//!   `reports`: the dashboard, the site visualization and the performance
//!   summary of data points.
//! - `policies`: policies as they read back, in their inputs' shape;
//!   `event_data`: the `SessionEventData` union (one member per data
//!   shape, `ShreddedData` once deleted); `payload`: logged events' JSON
//!   with camelCase field names; `node`: `node(id)` and the `Node`
//!   interface (plain UUIDs, or `Type:<uuid>`).
//! - Every type, field, input field and enum value has a description: the
//!   `described` test names any that has none.
//! - [`cost`]: the size of a document (fields after expanding fragments,
//!   aliases, depth, introspection), computed once before validation and
//!   refused over [`Limits`].
//! - `documents`: [`Documents`], parsed and sized documents kept by their
//!   text.
//! - `scope`: [`in_request`], the scope of one request's execution: one
//!   refusal fact and one playback per recording per request.

mod agent;
mod boxed;
mod context;
mod convert;
pub mod cost;
mod documents;
mod enums;
mod event_data;
mod holds;
mod inputs;
mod maintenance;
mod mutation;
mod node;
mod payload;
mod plain;
mod policies;
mod query;
mod reports;
mod scope;
mod subscription;
mod types;

use std::sync::Arc;

use async_graphql::Schema;

pub use context::RequestContext;
pub use documents::{operation_type, Documents, Prepared};
use mutation::MutationRoot;
pub use payload::snake_keys;
use query::QueryRoot;
pub use scope::in_request;
use subscription::SubscriptionRoot;

use crate::state::{Limits, Services};

/// The schema type.
pub type SrsSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema over `services`, with the limits of `services.limits`.
pub fn schema(services: Arc<Services>) -> SrsSchema {
    let limits = services.limits.clone();
    builder(&limits).data(services).finish()
}

fn builder(
    limits: &Limits,
) -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(cost::MAX_NESTING as usize)
        .limit_directives(16)
}

/// The SDL of the schema, as `srs schema` prints it.
pub fn sdl() -> String {
    builder(&Limits::default()).finish().sdl()
}

#[cfg(test)]
mod tests {
    /// The contract never changes by accident: after an intended change,
    /// regenerate it with `srs schema > api/schema.graphql` and review the diff.
    #[test]
    fn schema_matches_the_committed_sdl() {
        let committed = include_str!("../../schema.graphql");
        assert!(
            super::sdl() == committed,
            "the schema differs from api/schema.graphql; run `srs schema > api/schema.graphql` if intended"
        );
    }
}

#[cfg(test)]
mod described {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    /// Everything of the schema a client reads about: every type, field,
    /// input field and enum value has a description (the `///` comment of
    /// its Rust item). Names each one that has none.
    #[test]
    fn every_type_field_and_enum_value_is_described() {
        let sdl = super::sdl();
        let document = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
        let mut missing = Vec::new();
        let blank = |d: &Option<async_graphql::Positioned<String>>| {
            d.as_ref().is_none_or(|d| d.node.trim().is_empty())
        };
        for definition in &document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let ty = &ty.node;
            let name = ty.name.node.as_str();
            if blank(&ty.description) {
                missing.push(format!("type {name}"));
            }
            match &ty.kind {
                TypeKind::Object(object) => {
                    for field in &object.fields {
                        if blank(&field.node.description) {
                            missing.push(format!("field {name}.{}", field.node.name.node));
                        }
                    }
                }
                TypeKind::Interface(interface) => {
                    for field in &interface.fields {
                        if blank(&field.node.description) {
                            missing.push(format!("field {name}.{}", field.node.name.node));
                        }
                    }
                }
                TypeKind::InputObject(input) => {
                    for field in &input.fields {
                        if blank(&field.node.description) {
                            missing.push(format!("input field {name}.{}", field.node.name.node));
                        }
                    }
                }
                TypeKind::Enum(values) => {
                    for value in &values.values {
                        if blank(&value.node.description) {
                            missing.push(format!("enum value {name}.{}", value.node.value.node));
                        }
                    }
                }
                TypeKind::Scalar | TypeKind::Union(_) => {}
            }
        }
        assert!(
            missing.is_empty(),
            "{} schema items have no description (add a `///` comment):\n{}",
            missing.len(),
            missing.join("\n")
        );
    }
}
