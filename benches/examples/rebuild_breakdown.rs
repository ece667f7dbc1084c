//! Where the time of `srs bench rebuild` goes: the same generated log is
//! read and decoded alone, then rebuilt by each projection alone, then by
//! all of them together.
//!
//! `cargo run --release -p srs-bench --example rebuild_breakdown -- 100000`
//! prints one line per part: events per second and seconds. A second
//! argument rebuilds only that projection (`each`: each one alone, then
//! all together).

use std::sync::Arc;
use std::time::Instant;

use srs_domain::log::EventStore;
use srs_domain::model::DomainEvent;
use srs_projections::{all_projections, rebuild_all, SetOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let only: Option<String> = std::env::args().nth(2);
    let dir = tempfile::tempdir()?;
    let store = srs_bench::rebuild::generate(dir.path(), events).await?;
    let raw = srs_bench::rebuild::sled_iter_rate(&store)?;
    println!("{:<12} {:>12.0} entries/s", "sled_iter", raw);
    let db = store.db().clone();
    let store: Arc<dyn EventStore<DomainEvent>> = Arc::new(store);
    let batch = SetOptions::default().rebuild_batch_size;

    let head = store.head().position;
    let started = Instant::now();
    let mut next = 1;
    while next <= head {
        let got = store.read_all(next, batch).await?;
        next = got.last().map_or(head + 1, |e| e.position + 1);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:<12} {:>12.0} events/s {:>8.3} s",
        "read_decode",
        head as f64 / secs,
        secs
    );

    for p in all_projections() {
        if only
            .as_deref()
            .is_some_and(|o| o != p.name() && o != "each")
        {
            continue;
        }
        let report = rebuild_all(store.clone(), &db, &[p.clone()], batch).await?;
        println!(
            "{:<12} {:>12.0} events/s {:>8.3} s",
            p.name(),
            report.events_per_sec,
            report.elapsed.as_secs_f64()
        );
    }
    if only.as_deref().is_some_and(|o| o != "each") {
        return Ok(());
    }
    let report = rebuild_all(store.clone(), &db, &all_projections(), batch).await?;
    println!(
        "{:<12} {:>12.0} events/s {:>8.3} s  ratio {:.4}",
        "all",
        report.events_per_sec,
        report.elapsed.as_secs_f64(),
        report.events_per_sec / raw
    );
    Ok(())
}
