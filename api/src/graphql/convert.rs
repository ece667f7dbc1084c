//! Parsing and checking of scalar inputs: IDs, times, page sizes, string
//! lengths and characters. Each failure is `VALIDATION` and happens before
//! anything is written.
//!
//! # Characters
//!
//! Strings end up in the log, in the admin trail, in terminals (`srs
//! replay`, server logs) and in other people's browsers, so characters that
//! change how text around them is shown are refused rather than stored:
//!
//! - **names** ([`name`]: site, server, host, user, token, policy and rule
//!   names, reasons, ids, list entries, filters) refuse every control
//!   character (C0 including NUL, TAB, CR, LF and ESC; DEL; C1), the line
//!   and paragraph separators U+2028 / U+2029, and the bidirectional
//!   controls (U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069);
//! - **free text** ([`text`], [`comment`]: comments, messages) may span
//!   lines: TAB, LF and CR (and U+2028 / U+2029) are allowed, every other
//!   control character and every bidirectional control is refused.
//!
//! Recorded session data (session events' `data`) is what the session
//! showed and is only bounded in length, not filtered: it is sealed under
//! the recording's key and never shown as a name.

use async_graphql::ID;
use chrono::{DateTime, Utc};
use srs_domain::model as dm;
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

/// A log position, size or duration as a 64-bit GraphQL `Int`
/// (saturating at `i64::MAX`). JSON numbers carry it exactly up to 2^53;
/// the fields that use it say "64-bit" in their descriptions.
pub fn long(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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

/// Checks a name-like string: not blank, at most `max_name_len`
/// characters, no control characters (see the module docs).
pub fn name(field: &str, value: &str, limits: &Limits) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::validation(format!("`{field}` must not be empty")));
    }
    refuse_controls(field, value, false)?;
    bounded(field, value, limits.max_name_len)
}

/// Checks free text: at most `max_text_len` characters; lines allowed,
/// other control characters not (see the module docs).
pub fn text(field: &str, value: &str, limits: &Limits) -> ApiResult<String> {
    refuse_controls(field, value, true)?;
    bounded(field, value, limits.max_text_len)
}

/// Checks a comment: free text ([`text`]'s characters), not blank, at most
/// [`dm::MAX_COMMENT_CHARS`] characters: the one comment limit, which the
/// domain enforces too. Longer is `VALIDATION`, never cut.
pub fn comment(field: &str, value: &str) -> ApiResult<String> {
    if value.trim().is_empty() {
        return Err(ApiError::validation(format!("`{field}` must not be empty")));
    }
    refuse_controls(field, value, true)?;
    bounded(field, value, dm::MAX_COMMENT_CHARS)
}

/// Session data as recorded: only bounded by `max_text_len` (see the
/// module docs).
pub fn recorded(field: &str, value: &str, limits: &Limits) -> ApiResult<String> {
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

/// Whether `c` is a bidirectional control (Unicode `Bidi_Control`).
fn bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Refuses control characters: all of them in a name; in free text
/// (`lines`) all but TAB, LF, CR and the line and paragraph separators.
fn refuse_controls(field: &str, value: &str, lines: bool) -> ApiResult<()> {
    let line_break = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{2028}' | '\u{2029}');
    let refused = value.chars().find(|&c| {
        if lines && line_break(c) {
            return false;
        }
        c.is_control() || bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
    });
    match refused {
        Some(c) => Err(ApiError::validation(format!(
            "`{field}` must not contain control characters (found U+{:04X}){}",
            u32::from(c),
            if lines {
                ""
            } else {
                "; names are one line of printable text"
            }
        ))),
        None => Ok(()),
    }
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
    fn names_refuse_every_control_character() {
        let limits = Limits::default();
        for bad in [
            "a\u{0}b",
            "a\u{1b}[31mb",
            "a\u{202E}b",
            "a\u{2066}b",
            "a\u{200F}b",
            "a\nb",
            "a\rb",
            "a\tb",
            "a\u{7f}b",
            "a\u{85}b",
            "a\u{2028}b",
        ] {
            let refused = name("name", bad, &limits).expect_err(bad);
            assert_eq!(refused.code, crate::error::Code::Validation, "{bad:?}");
            assert!(
                refused.message.contains("control characters"),
                "{}",
                refused.message
            );
        }
        // Scripts of every direction are names like any other.
        assert_eq!(name("name", "שרת ראשי", &limits).unwrap(), "שרת ראשי");
        assert_eq!(name("name", "Zürich 東京", &limits).unwrap(), "Zürich 東京");
    }

    #[test]
    fn free_text_may_span_lines_but_holds_no_other_controls() {
        let limits = Limits::default();
        assert!(text("message", "line 1\n\tline 2\r\n", &limits).is_ok());
        assert!(comment("text", "first\nsecond").is_ok());
        for bad in ["a\u{0}b", "a\u{1b}b", "a\u{202E}b", "a\u{7}b"] {
            assert!(text("message", bad, &limits).is_err(), "{bad:?}");
            assert!(comment("text", bad).is_err(), "{bad:?}");
        }
        // Recorded session data is only bounded.
        assert!(recorded("data", "\u{1b}[1mbold\u{1b}[0m", &limits).is_ok());
    }

    #[test]
    fn a_comment_is_refused_past_the_one_limit_never_cut() {
        let longest = "x".repeat(dm::MAX_COMMENT_CHARS);
        assert_eq!(comment("text", &longest).unwrap(), longest);
        let refused = comment("text", &format!("{longest}x")).unwrap_err();
        assert_eq!(refused.code, crate::error::Code::Validation);
        assert!(refused.message.contains("4096"), "{}", refused.message);
        assert!(comment("text", " \n ").is_err());
    }

    #[test]
    fn strings_are_bounded() {
        let limits = Limits::default();
        assert!(name("name", "  ", &limits).is_err());
        assert!(name("name", &"x".repeat(257), &limits).is_err());
        assert_eq!(name("name", " a ", &limits).unwrap(), "a");
    }
}
