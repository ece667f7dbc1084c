//! Criterion view of the log: one durable single-event append, and a
//! decoded read of 1024 events. `srs bench log` gives the concurrent
//! figures with their same-run baselines.

use criterion::{criterion_group, criterion_main, Criterion};
use srs_bench::log::{bench_event, BenchEvent};
use srs_domain::actor::Actor;
use srs_domain::log::{EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions};

fn log(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let log =
        SledEventStore::<BenchEvent>::open(dir.path(), StoreOptions::default()).expect("open");
    let actor = Actor::system("bench");
    let mut n = 0u64;
    c.bench_function("append_1_event_durable", |b| {
        b.iter(|| {
            n += 1;
            runtime
                .block_on(log.append(
                    "bench",
                    ExpectedVersion::Any,
                    vec![NewEvent::new(actor.clone(), bench_event(n))],
                ))
                .expect("append")
        })
    });
    c.bench_function("read_1024_events", |b| {
        b.iter(|| runtime.block_on(log.read_all(1, 1024)).expect("read"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = log
}
criterion_main!(benches);
