//! `srs bench`: the benchmark subcommand (see `DESIGN.md`, "Tests and
//! benchmarks"). Every figure is printed with the baseline measured in
//! the same run.

/// The benchmark groups of `srs bench`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchKind {
    /// Durable appends (1, 8, 64 writers) and the full scan.
    Log,
    /// Rebuilding every read model from a generated history.
    Rebuild,
    /// The dashboard query and a filtered recordings page under 32
    /// connections, against a plain axum handler on the same server.
    Graphql,
    All,
}

pub async fn bench(
    which: BenchKind,
    json: bool,
    seconds: f64,
    scan_events: u64,
    rebuild_events: u64,
    graphql: &crate::bench_graphql::GraphqlBenchOptions,
) -> anyhow::Result<()> {
    let print = |figure: &srs_bench::Figure| {
        if json {
            println!("{}", figure.to_json());
        } else {
            println!("{figure}");
        }
    };
    if matches!(which, BenchKind::Log | BenchKind::All) {
        let options = srs_bench::log::LogBenchOptions {
            seconds,
            scan_events,
        };
        for figure in srs_bench::log::run(&options).await? {
            print(&figure);
        }
    }
    if matches!(which, BenchKind::Rebuild | BenchKind::All) {
        for figure in srs_bench::rebuild::run(rebuild_events).await? {
            print(&figure);
        }
    }
    if matches!(which, BenchKind::Graphql | BenchKind::All) {
        for figure in crate::bench_graphql::run(graphql).await? {
            print(&figure);
        }
    }
    if let Some(rss) = srs_bench::resources::peak_rss_bytes() {
        print(&srs_bench::Figure::new(
            "resources",
            "peak_rss",
            rss as f64,
            "bytes",
        ));
    }
    Ok(())
}
