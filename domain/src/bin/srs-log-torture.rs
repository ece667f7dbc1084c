//! Appends under concurrent load forever and prints `ack <position> <event id>`
//! for every acknowledged event, so a test can SIGKILL it at any moment and
//! check that everything acknowledged survived.
//!
//! Usage: `srs-log-torture DIR [WRITERS]`
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use srs_domain::actor::Actor;
use srs_domain::log::{Event, EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions};

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

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: srs-log-torture DIR [WRITERS]"));
    let writers: u64 = args.next().and_then(|w| w.parse().ok()).unwrap_or(16);
    let log = SledEventStore::<Load>::open(&dir, StoreOptions::default()).expect("open log");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for writer in 0..writers {
        let log = log.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let stream = format!("w{writer}");
            for n in 0.. {
                // Mix single events and multi-event appends.
                let count = if n % 5 == 0 { 3 } else { 1 };
                let batch: Vec<_> = (0..count)
                    .map(|i| {
                        NewEvent::new(
                            Actor::system("torture"),
                            Load {
                                writer,
                                n: n * 10 + i,
                                filler: vec![n as u8; 64],
                            },
                        )
                    })
                    .collect();
                let ids: Vec<_> = batch.iter().map(|e| e.event_id).collect();
                let appended = log
                    .append(&stream, ExpectedVersion::Any, batch)
                    .await
                    .expect("append");
                for (position, id) in appended.positions.iter().zip(ids) {
                    if tx.send(format!("ack {position} {id}\n")).is_err() {
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    let stdout = std::io::stdout();
    while let Some(line) = rx.recv().await {
        let mut out = stdout.lock();
        // The parent may kill us mid-write; a torn last line is ignored there.
        if out
            .write_all(line.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return;
        }
    }
}
