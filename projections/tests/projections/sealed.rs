//! Sealed session events and detections fold into every read model
//! without their keys, and no read model holds a plain copy of what they
//! seal: folding a recording's log (a live fold, or a rebuild after its
//! deletion) leaves no key or value holding its text.

use srs_domain::model::{DomainEvent, SessionEventData, SessionEventType, Severity};
use srs_domain::seal::{self, KeyRing};
use srs_projections::models::detections::DetectionFilter;
use srs_projections::store::Keyspace;

use crate::fixtures::*;

const MARKER: &str = "marker-5eal-1d";

/// A recording whose events carry the marker: a started application, a
/// URL, a window title and a detection subject; then its deletion.
fn history(rec: &Rec) -> Vec<DomainEvent> {
    let mut detected = rec.detected(
        3,
        SessionEventType::WebBrowsing,
        Severity::High,
        "web",
        3_000,
    );
    if let DomainEvent::EventDetected { subject, .. } = &mut detected {
        *subject = Some(format!("{MARKER}.example.com"));
    }
    vec![
        rec.started(),
        rec.app_started(1, "notepad.exe", 1_000),
        rec.event(
            2,
            SessionEventType::TopMostWindow,
            2_000,
            SessionEventData::App {
                app: "notepad.exe".into(),
                pid: Some(4),
                title: Some(format!("{MARKER}.txt - Notepad")),
                detail: None,
            },
        ),
        rec.event(
            3,
            SessionEventType::WebBrowsing,
            3_000,
            SessionEventData::Web {
                url: format!("https://{MARKER}.example.com/x"),
                browser: None,
                title: None,
            },
        ),
        detected,
        rec.ended_after_secs(60),
    ]
}

/// The trees' keys and values that hold `needle`.
fn holding(folded: &Folded, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for name in srs_projections::models::all_projections()
        .iter()
        .map(|p| p.name())
    {
        for entry in folded.tree(name).iter() {
            let (k, v) = entry.unwrap();
            for bytes in [&k[..], &v[..]] {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(name.to_string());
                }
            }
        }
    }
    found
}

#[test]
fn read_models_fold_sealed_events_and_hold_no_plain_copy() {
    let rec = Rec::new(1);
    let keys = KeyRing::in_memory();
    keys.create(rec.id).unwrap();
    let sealed: Vec<DomainEvent> = history(&rec)
        .into_iter()
        .map(|e| seal::seal_event(&keys, e).unwrap())
        .collect();
    let mut folded = Folded::given(sealed.clone());

    // The plain facts are folded: counts, applications, the detection.
    let row = folded.catalogue().get(rec.id).unwrap().unwrap();
    assert_eq!(row.points.event_count, 3);
    assert_eq!(row.points.detection_count, 1);
    assert!(row.points.applications.contains("notepad.exe"));
    let detections = folded
        .detections()
        .search(
            &DetectionFilter {
                recording_id: Some(rec.id),
                ..DetectionFilter::default()
            },
            Some(10),
            None,
        )
        .unwrap();
    let row = &detections.items[0].1;
    assert_eq!(row.subject, None);
    let subject = seal::detection_subject(
        &keys,
        row.recording_id,
        row.detection_id,
        None,
        row.sealed_subject.as_ref(),
        false,
    );
    assert_eq!(
        subject,
        Some(seal::Revealed::Plain(format!("{MARKER}.example.com")))
    );
    assert_eq!(holding(&folded, MARKER), Vec::<String>::new());

    // Deleted, then every read model rebuilt from the log: still nothing.
    keys.shred(rec.id).unwrap();
    folded.apply(admin(), [rec.deleted()]);
    assert_eq!(holding(&folded, MARKER), Vec::<String>::new());
    let mut log = sealed;
    log.push(rec.deleted());
    let rebuilt = Folded::given(log);
    assert_eq!(holding(&rebuilt, MARKER), Vec::<String>::new());
    assert_eq!(
        rebuilt
            .catalogue()
            .get(rec.id)
            .unwrap()
            .unwrap()
            .points
            .event_count,
        3
    );

    // The scan does find plain text where a read model keeps it: the same
    // history logged plain (before sealing) leaves the detection subject.
    let mut plain = Folded::given(history(&rec));
    assert_ne!(holding(&plain, MARKER), Vec::<String>::new());
    // Its deletion drops that plain copy in the same commit.
    plain.apply(admin(), [rec.deleted()]);
    assert_eq!(holding(&plain, MARKER), Vec::<String>::new());
}
