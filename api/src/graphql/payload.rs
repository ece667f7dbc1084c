//! The JSON of a logged event's payload as `history` and the `log`
//! subscription show it: the event's variant name as the one key
//! (`{"SiteCreated": {...}}`), its fields under camelCase keys like every
//! other name of the API (`siteId`, `recordingId`, `holdId`).
//!
//! Keys are renamed wherever they are field names; the keys of maps that
//! hold names given by users (an install's `extra` options) are kept as
//! they were given. The log and `srs export` keep the stored (snake_case)
//! form; [`snake_keys`] turns the API's form back into it, which
//! `srs replay --url` uses so that it prints what an offline `srs replay`
//! prints.

use serde_json::{Map, Value};

/// Fields whose value is a map keyed by user-given names.
const FREE_FORM: &[&str] = &["extra"];

/// `snake_case` -> `camelCase` (keys without `_` are unchanged).
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `camelCase` -> `snake_case` (keys starting upper-case, the variant
/// names, are unchanged).
fn snake(key: &str) -> String {
    if key.starts_with(|c: char| c.is_ascii_uppercase()) {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn rename(value: Value, key_of: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let renamed = key_of(&key);
                    let value = if FREE_FORM.contains(&renamed.as_str())
                        || FREE_FORM.contains(&key.as_str())
                    {
                        value
                    } else {
                        rename(value, key_of)
                    };
                    (renamed, value)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| rename(v, key_of)).collect()),
        other => other,
    }
}

/// The API's form of a stored payload's JSON: field names in camelCase.
pub fn camel_keys(value: Value) -> Value {
    rename(value, &camel)
}

/// The stored form back from the API's: field names in snake_case.
pub fn snake_keys(value: Value) -> Value {
    rename(value, &snake)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn field_names_turn_camel_case_and_back_but_user_names_stay() {
        let stored = json!({"InstallRequested": {
            "server_id": "s", "job_id": "j",
            "options": {"name": null, "extra": {"my_flag": "1", "Other": "2"}},
            "items": [{"size_bytes": 3}]
        }});
        let shown = camel_keys(stored.clone());
        assert_eq!(
            shown,
            json!({"InstallRequested": {
                "serverId": "s", "jobId": "j",
                "options": {"name": null, "extra": {"my_flag": "1", "Other": "2"}},
                "items": [{"sizeBytes": 3}]
            }})
        );
        assert_eq!(snake_keys(shown), stored);
        assert_eq!(camel("file_sha256"), "fileSha256");
        assert_eq!(snake("fileSha256"), "file_sha256");
    }
}
