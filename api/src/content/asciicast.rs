//! asciicast v2 (a terminal session): a JSON header line, then one JSON
//! array per event, `[seconds, code, data]` (`o` output, `i` input, `m`
//! marker, `r` resize). Its events become CUSTOM session events named
//! `asciicast.<code>` with the data as text, so they are searchable and
//! replay on the recording's timeline; their ids derive from the recording
//! and the line, so indexing a file again adds nothing.

use srs_domain::model::{derived_id, SessionEvent, SessionEventData, SessionEventType};
use uuid::Uuid;

/// The content type an asciicast is stored under.
pub const CONTENT_TYPE: &str = "application/x-asciicast";

/// The most characters of one event's data kept in the session event (the
/// content itself keeps everything).
const MAX_EVENT_CHARS: usize = 4_096;

/// Parses an asciicast v2 file into session events; the error says which
/// line is wrong.
pub fn parse(recording_id: Uuid, body: &[u8]) -> Result<Vec<SessionEvent>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "an asciicast is UTF-8 text".to_string())?;
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, line)| line)
        .ok_or("the asciicast is empty")?;
    let header: serde_json::Value =
        serde_json::from_str(header).map_err(|e| format!("line 1: the header is not JSON: {e}"))?;
    if header.get("version").and_then(serde_json::Value::as_u64) != Some(2) {
        return Err("line 1: only asciicast version 2 is accepted".into());
    }
    parse_lines(recording_id, lines)
}

/// The session events of asciicast event lines (no header), each with its
/// 0-based line number in the whole file (the header is line 0): how a
/// cast streamed in chunks is indexed chunk by chunk, with the same event
/// ids as the whole file would give.
pub fn parse_lines<'a>(
    recording_id: Uuid,
    lines: impl IntoIterator<Item = (usize, &'a str)>,
) -> Result<Vec<SessionEvent>, String> {
    let mut events = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}", index + 1);
        let (seconds, code, data): (f64, String, String) =
            serde_json::from_str(line).map_err(|_| bad("an event is [seconds, code, data]"))?;
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(bad("the time is not a non-negative number"));
        }
        if code.is_empty() || code.len() > 16 {
            return Err(bad("the event code is 1 to 16 characters"));
        }
        let data: String = data.chars().take(MAX_EVENT_CHARS).collect();
        events.push(SessionEvent {
            event_id: derived_id(
                "srs:asciicast-event",
                &[recording_id.as_bytes(), &(index as u64).to_be_bytes()],
            ),
            event_type: SessionEventType::Custom,
            offset_ms: (seconds * 1_000.0).round() as u64,
            data: SessionEventData::Custom {
                name: format!("asciicast.{code}"),
                data,
            },
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAST: &str = "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.5, \"o\", \"$ ls\\r\\n\"]\n[1.25, \"i\", \"q\"]\n";

    #[test]
    fn events_become_custom_session_events_with_offsets() {
        let id = Uuid::now_v7();
        let events = parse(id, CAST.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].offset_ms, 500);
        assert_eq!(events[1].offset_ms, 1_250);
        assert_eq!(
            events[0].data,
            SessionEventData::Custom {
                name: "asciicast.o".into(),
                data: "$ ls\r\n".into()
            }
        );
        assert!(events.iter().all(|e| e.validate().is_ok()));
        assert_eq!(
            parse(id, CAST.as_bytes()).unwrap(),
            events,
            "ids are stable"
        );
    }

    #[test]
    fn malformed_files_name_the_line() {
        let id = Uuid::now_v7();
        assert!(parse(id, b"").is_err());
        assert!(parse(id, b"{\"version\": 1}\n")
            .unwrap_err()
            .contains("version 2"));
        let err = parse(id, b"{\"version\": 2}\n[0.1, \"o\", \"a\"]\nnot json\n").unwrap_err();
        assert!(err.starts_with("line 3"), "{err}");
        assert!(parse(id, b"{\"version\": 2}\n[-1, \"o\", \"a\"]\n").is_err());
    }
}
