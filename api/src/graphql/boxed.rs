//! [`Boxed`]: a field's object value resolved in a future of its own.
//!
//! async-graphql resolves every field of an object through one future
//! type, as large as its largest field's, and allocates and copies it per
//! field asked. A field that returns an object (a recording's `server`,
//! `playback`) holds that object's resolution inline, so a page asking
//! ten plain fields of 50 recordings paid for the largest of them 500
//! times. Returned as `Boxed<T>`, the value and its resolution are
//! allocated only when that field is asked; the schema is `T`'s.

use async_graphql::parser::types::Field;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};

/// `T`, on the heap and resolved in a boxed future (same GraphQL type as
/// `T`).
pub struct Boxed<T>(Box<T>);

impl<T> Boxed<T> {
    pub fn new(value: T) -> Self {
        Boxed(Box::new(value))
    }
}

/// A list collected straight into its box.
impl<T> FromIterator<T> for Boxed<Vec<T>> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        Boxed::new(items.into_iter().collect())
    }
}

/// The items of `OutputType` that make a wrapper of `T` (held at `.0`)
/// the type `T` in the schema; the wrapper writes its own `resolve`.
macro_rules! schema_type_of_inner {
    ($inner:ident) => {
        fn type_name() -> std::borrow::Cow<'static, str> {
            $inner::type_name()
        }

        fn qualified_type_name() -> String {
            $inner::qualified_type_name()
        }

        fn introspection_type_name(&self) -> std::borrow::Cow<'static, str> {
            self.0.introspection_type_name()
        }

        fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
            $inner::create_type_info(registry)
        }
    };
}
pub(crate) use schema_type_of_inner;

impl<T: OutputType> OutputType for Boxed<T> {
    schema_type_of_inner!(T);

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        Box::pin(self.0.resolve(ctx, field)).await
    }
}

#[cfg(test)]
mod tests {
    use super::Boxed;
    use crate::graphql::types::Site;
    use async_graphql::OutputType;

    #[test]
    fn a_boxed_value_is_its_inner_type_in_the_schema() {
        assert_eq!(Boxed::<Site>::type_name(), Site::type_name());
        assert_eq!(
            Boxed::<Site>::qualified_type_name(),
            Site::qualified_type_name()
        );
        assert_eq!(
            Option::<Boxed<Vec<Site>>>::qualified_type_name(),
            Option::<Vec<Site>>::qualified_type_name()
        );
    }
}
