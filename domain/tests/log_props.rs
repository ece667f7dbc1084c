//! Property: whatever mix of concurrent appends and expected versions,
//! positions are gapless and unique, stream versions are gapless, every
//! acknowledged event is readable, every refused append wrote nothing, and
//! the chain verifies.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use proptest::prelude::*;
use srs_domain::log::{verify, AppendError, EventStore, ExpectedVersion};
use uuid::Uuid;

#[derive(Clone, Debug)]
struct Op {
    stream: u8,
    expected: ExpectedVersion,
    count: usize,
}

fn op() -> impl Strategy<Value = Op> {
    let expected = prop_oneof![
        Just(ExpectedVersion::Any),
        Just(ExpectedVersion::NoStream),
        (0u64..6).prop_map(ExpectedVersion::Exact),
    ];
    (0u8..4, expected, 1usize..4).prop_map(|(stream, expected, count)| Op {
        stream,
        expected,
        count,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_appends_keep_every_promise(tasks in prop::collection::vec(prop::collection::vec(op(), 1..12), 1..8)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(check(tasks))?;
    }
}

struct Outcome {
    stream: String,
    ids: Vec<Uuid>,
    result: Result<Vec<u64>, String>,
}

async fn check(tasks: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut handles = Vec::new();
    for ops in tasks {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for op in ops {
                let stream = format!("s{}", op.stream);
                let batch = events(0..op.count as u64);
                let ids = batch.iter().map(|e| e.event_id).collect();
                let result = match log.append(&stream, op.expected, batch).await {
                    Ok(a) => Ok(a.positions),
                    Err(AppendError::Conflict(c)) => Err(c.to_string()),
                    Err(other) => panic!("unexpected: {other:?}"),
                };
                outcomes.push(Outcome {
                    stream,
                    ids,
                    result,
                });
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.extend(h.await.unwrap());
    }

    let head = log.head().position;
    let mut positions = HashSet::new();
    for o in &outcomes {
        match &o.result {
            Ok(ps) => {
                prop_assert_eq!(ps.len(), o.ids.len());
                for (p, id) in ps.iter().zip(&o.ids) {
                    prop_assert!(positions.insert(*p), "position {} handed out twice", p);
                    let stored = log.read_event(*id).await.unwrap();
                    let stored = stored.expect("acknowledged event is readable");
                    prop_assert_eq!(stored.position, *p);
                    prop_assert_eq!(&stored.stream, &o.stream);
                }
                // One append's events are contiguous.
                prop_assert!(ps.windows(2).all(|w| w[1] == w[0] + 1));
            }
            Err(_) => {
                for id in &o.ids {
                    prop_assert!(
                        log.read_event(*id).await.unwrap().is_none(),
                        "refused append wrote {}",
                        id
                    );
                }
            }
        }
    }
    let expected: HashSet<u64> = (1..=head).collect();
    prop_assert_eq!(
        positions,
        expected,
        "acknowledged positions are exactly 1..=head"
    );

    let all = log.read_all(1, usize::MAX).await.unwrap();
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    for e in &all {
        let v = versions.entry(e.stream.clone()).or_default();
        *v += 1;
        prop_assert_eq!(e.version, *v, "stream {} versions gapless", e.stream);
    }
    for (stream, v) in versions {
        prop_assert_eq!(log.stream_version(&stream).await.unwrap(), Some(v));
    }
    let report = verify::<TestEvent>(log.tree(), 1, |_| {}).unwrap();
    prop_assert!(report.is_intact(), "{:?}", report.breach);
    Ok(())
}
