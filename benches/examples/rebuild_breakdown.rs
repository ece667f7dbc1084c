//! Where the time of `srs bench rebuild` goes: the same generated log is
//! read and decoded alone, then rebuilt by each projection alone, then by
//! all of them together.
//!
//! `cargo run --release -p srs-bench --example rebuild_breakdown -- 100000`
//! prints one line per part: events per second, seconds, CPU seconds and,
//! for a projection alone, the entries its rebuilt tree holds. A second
//! argument rebuilds only that projection (`each`: each one alone, then
//! all together; `-name`: all but that one, together). A third argument
//! sets the rebuild batch size.

use std::sync::Arc;
use std::time::Instant;

use srs_domain::log::EventStore;
use srs_domain::model::DomainEvent;
use srs_projections::engine::parse_tree_name;
use srs_projections::{all_projections, rebuild_all, SetOptions};

/// CPU seconds (user + system) this process has used so far, from
/// `/proc/self/stat` (0 where there is none): on a shared machine it says
/// more than the wall clock.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which ends with the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// Entries (data, checkpoint and version) in the trees of projection
/// `name`: after a rebuild, only its new tree is left.
fn entries_of(db: &sled::Db, name: &str) -> usize {
    db.tree_names()
        .iter()
        .filter(|t| parse_tree_name(t).is_some_and(|(n, _)| n == name))
        .filter_map(|t| db.open_tree(t).ok())
        .map(|t| t.len())
        .sum()
}

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
    // A third argument overrides the rebuild batch size.
    let batch = match std::env::args().nth(3) {
        Some(b) => b.parse()?,
        None => SetOptions::default().rebuild_batch_size,
    };

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

    // `-name`: all projections but that one, together.
    if let Some(left_out) = only.as_deref().and_then(|o| o.strip_prefix('-')) {
        let rest: Vec<_> = all_projections()
            .into_iter()
            .filter(|p| p.name() != left_out)
            .collect();
        let cpu = cpu_secs();
        let report = rebuild_all(store.clone(), &db, &rest, batch).await?;
        println!(
            "{:<12} {:>12.0} events/s {:>8.3} s {:>8.2} cpu-s  ratio {:.4}",
            format!("all-{left_out}"),
            report.events_per_sec,
            report.elapsed.as_secs_f64(),
            cpu_secs() - cpu,
            report.events_per_sec / raw
        );
        return Ok(());
    }
    for p in all_projections() {
        if only
            .as_deref()
            .is_some_and(|o| o != p.name() && o != "each")
        {
            continue;
        }
        let cpu = cpu_secs();
        let report = rebuild_all(store.clone(), &db, std::slice::from_ref(&p), batch).await?;
        println!(
            "{:<12} {:>12.0} events/s {:>8.3} s {:>8.2} cpu-s {:>9} entries",
            p.name(),
            report.events_per_sec,
            report.elapsed.as_secs_f64(),
            cpu_secs() - cpu,
            entries_of(&db, p.name())
        );
    }
    if only.as_deref().is_some_and(|o| o != "each") {
        return Ok(());
    }
    let cpu = cpu_secs();
    let report = rebuild_all(store.clone(), &db, &all_projections(), batch).await?;
    println!(
        "{:<12} {:>12.0} events/s {:>8.3} s {:>8.2} cpu-s  ratio {:.4}",
        "all",
        report.events_per_sec,
        report.elapsed.as_secs_f64(),
        cpu_secs() - cpu,
        report.events_per_sec / raw
    );
    Ok(())
}
