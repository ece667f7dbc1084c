//! [`Boxed`]: a field's object value resolved in a future of its own.
//!
//! async-graphql resolves every field of an object through one future
//! type, as large as its largest field's, and allocates and copies it per
//! field asked. A field that returns an object (a recording's `server`,
//! `playback`) holds that object's resolution inline, so a page asking
//! ten plain fields of 50 recordings paid for the largest of them 500
//! times. Returned as `Boxed<T>`, the value and its resolution are
//! allocated only when that field is asked; the schema is `T`'s.

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
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

impl<T: OutputType> OutputType for Boxed<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

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
