//! Parsing and checking of scalar inputs: IDs, times, page sizes, string
//! lengths. Each failure is `VALIDATION` and happens before anything is
//! written.

use async_graphql::ID;
use chrono::{DateTime, Utc};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::Limits;

/// An `ID` argument as a UUID.
pub fn uuid(id: &ID, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| ApiError::validation(format!("`{}` is not a valid {what} ID", clip(id))))
}

/// Optional `ID`.
pub fn opt_uuid(id: Option<&ID>, what: &str) -> ApiResult<Option<Uuid>> {
    id.map(|id| uuid(id, what)).transpose()
}

/// A list of `ID`s.
pub fn uuids(ids: &[ID], what: &str) -> ApiResult<Vec<Uuid>> {
    ids.iter().map(|id| uuid(id, what)).collect()
}

/// A UUID as an `ID`.
pub fn id(uuid: Uuid) -> ID {
    ID(uuid.to_string())
}

pub fn time(t: Timestamp) -> DateTime<Utc> {
    t.to_datetime()
}

pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    t.into()
}

/// A log position or count as a GraphQL `Int` (saturating; `Int` is 32 bits).
pub fn int(value: u64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// A non-negative `Int` argument.
pub fn non_negative(value: i32, what: &str) -> ApiResult<u64> {
    u64::try_from(value).map_err(|_| ApiError::validation(format!("{what} must not be negative")))
}

/// The page size of a connection: default 50, 1..=500, else `VALIDATION`.
pub fn page(first: Option<i32>, limits: &Limits) -> ApiResult<usize> {
    match first {
        None => Ok(limits.default_page),
        Some(n) if n >= 1 && (n as usize) <= limits.max_page => Ok(n as usize),
        Some(n) => Err(ApiError::validation(format!(
            "`first` must be between 1 and {}, not {n}",
            limits.max_page
        ))),
    }
}

/// Checks a name-like string: not blank, at most `max_name_len` characters.
pub fn name(field: &str, value: &str, limits: &Limits) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::validation(format!("`{field}` must not be empty")));
    }
    bounded(field, value, limits.max_name_len)
}

/// Checks free text: at most `max_text_len` characters.
pub fn text(field: &str, value: &str, limits: &Limits) -> ApiResult<String> {
    bounded(field, value, limits.max_text_len)
}

/// Checks every string of a list with [`name`].
pub fn names(field: &str, values: &[String], limits: &Limits) -> ApiResult<Vec<String>> {
    if values.len() > limits.max_page {
        return Err(ApiError::validation(format!(
            "`{field}` holds at most {} values",
            limits.max_page
        )));
    }
    values.iter().map(|v| name(field, v, limits)).collect()
}

pub fn opt_name(field: &str, value: Option<&str>, limits: &Limits) -> ApiResult<Option<String>> {
    value.map(|v| name(field, v, limits)).transpose()
}

fn bounded(field: &str, value: &str, max: usize) -> ApiResult<String> {
    if value.chars().count() > max {
        return Err(ApiError::validation(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    Ok(value.to_owned())
}

/// The first characters of an ID, for messages.
fn clip(id: &ID) -> String {
    id.as_str().chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_uuids() {
        assert!(uuid(&ID("nope".into()), "site").is_err());
        let u = Uuid::now_v7();
        assert_eq!(uuid(&id(u), "site").unwrap(), u);
    }

    #[test]
    fn page_sizes_are_bounded() {
        let limits = Limits::default();
        assert_eq!(page(None, &limits).unwrap(), 50);
        assert_eq!(page(Some(500), &limits).unwrap(), 500);
        assert!(page(Some(501), &limits).is_err());
        assert!(page(Some(0), &limits).is_err());
    }

    #[test]
    fn strings_are_bounded() {
        let limits = Limits::default();
        assert!(name("name", "  ", &limits).is_err());
        assert!(name("name", &"x".repeat(257), &limits).is_err());
        assert_eq!(name("name", " a ", &limits).unwrap(), "a");
    }
}
