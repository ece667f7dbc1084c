//! Crash safety: a child process appends under concurrent load and prints
//! every acknowledged position; it is killed with SIGKILL at random moments.
//! After each kill the log is reopened and must hold every acknowledged
//! event, gapless, with an intact chain, and accept appends again.
//!
//! `SRS_CRASH_CYCLES` sets the number of kill cycles (default 10).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use srs_domain::log::{verify, Event, EventStore, SledEventStore, StoreOptions};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Load {
    writer: u64,
    n: u64,
    filler: Vec<u8>,
}

impl Event for Load {
    fn event_type(&self) -> &'static str {
        "Load"
    }
}

fn cycles() -> usize {
    std::env::var("SRS_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10)
}

#[tokio::test]
async fn every_acknowledged_event_survives_sigkill_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut acknowledged: Vec<(u64, Uuid)> = Vec::new();
    let cycles = cycles();
    for cycle in 0..cycles {
        let mut child = Command::new(env!("CARGO_BIN_EXE_srs-log-torture"))
            .arg(dir.path())
            .arg("16")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start torture child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split(' ');
                if let (Some("ack"), Some(pos), Some(id)) =
                    (parts.next(), parts.next(), parts.next())
                {
                    if let (Ok(pos), Ok(id)) = (pos.parse::<u64>(), id.parse::<Uuid>()) {
                        let _ = tx.send((pos, id));
                    }
                }
            }
        });
        // Wait for the first acknowledgement (startup), then a random while.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child acknowledges");
        acknowledged.push(first);
        let deadline = Instant::now() + Duration::from_millis(rng.gen_range(20..400));
        while Instant::now() < deadline {
            if let Ok(ack) = rx.recv_timeout(Duration::from_millis(5)) {
                acknowledged.push(ack);
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        reader.join().unwrap();
        acknowledged.extend(rx.try_iter());

        let log = SledEventStore::<Load>::open(dir.path(), StoreOptions::default())
            .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): reopen failed: {e}"));
        let report = verify::<Load>(log.tree(), 1, |_| {}).unwrap();
        assert!(
            report.is_intact(),
            "cycle {cycle} (seed {seed}): chain broken: {:?}",
            report.breach
        );
        let head = log.head().position;
        for &(position, id) in &acknowledged {
            assert!(
                position <= head,
                "cycle {cycle} (seed {seed}): acknowledged position {position} beyond head {head}"
            );
            let stored =
                log.read_event(id).await.unwrap().unwrap_or_else(|| {
                    panic!("cycle {cycle} (seed {seed}): acknowledged {id} lost")
                });
            assert_eq!(stored.position, position);
        }
        assert_eq!(
            report.checked, head,
            "every position up to the head is stored"
        );
    }
    assert!(
        acknowledged.len() > cycles,
        "the child made progress: {} acknowledgements",
        acknowledged.len()
    );
}
