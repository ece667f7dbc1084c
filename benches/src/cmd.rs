//! `srs bench`: the benchmarks run by the `srs-bench` binary (see
//! `DESIGN.md`, "Tests and benchmarks"). Every figure is printed with the
//! baseline measured in the same run.

/// The benchmark groups of `srs bench`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchKind {
    /// Durable appends (1, 8, 64 writers), session events sealed vs plain,
    /// and the full scan; with --log-url also the 64-writer append on a
    /// JetStream log against raw publishes, and through two nodes.
    Log,
    /// Rebuilding every read model from a generated history (rate and peak
    /// RSS), filtered catalogue and history pages.
    Rebuild,
    /// The server on a generated history: the dashboard query and a
    /// filtered recordings page under 32 connections against a plain axum
    /// handler, idle and while 64 agents ingest; the agents' ingest rate
    /// through GraphQL against the log's 64-writer append; `srs serve`'s
    /// idle RSS against an empty one.
    Graphql,
    All,
}

/// Servers outside this process that `log` also measures on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Servers<'a> {
    /// A PostgreSQL URL (`--pg`).
    pub pg: Option<&'a str>,
    /// A JetStream cluster's URLs (`--log-url`).
    pub log_url: Option<&'a str>,
}

pub async fn bench(
    which: BenchKind,
    json: bool,
    seconds: f64,
    scan_events: u64,
    (rebuild_events, catalogue_recordings): (u64, u64),
    servers: Servers<'_>,
    graphql: &crate::graphql_server::GraphqlBenchOptions,
) -> anyhow::Result<()> {
    let print = |figure: &crate::Figure| {
        if json {
            println!("{}", figure.to_json());
        } else {
            println!("{figure}");
        }
    };
    if matches!(which, BenchKind::Log | BenchKind::All) {
        let options = crate::log::LogBenchOptions {
            seconds,
            scan_events,
        };
        let figures = crate::log::run(&options).await?;
        for figure in &figures {
            print(figure);
        }
        if let Some(url) = servers.pg {
            for figure in pg_figures(url, seconds, &figures).await? {
                print(&figure);
            }
        }
        if let Some(urls) = servers.log_url {
            let sled_64 = figures
                .iter()
                .find(|f| f.figure == "append_64_writers")
                .map(|f| f.value);
            let measure = std::time::Duration::from_secs_f64(seconds);
            for figure in crate::jetstream::run(urls, measure, sled_64).await? {
                print(&figure);
            }
        }
    }
    if matches!(which, BenchKind::Rebuild | BenchKind::All) {
        for figure in crate::rebuild::run(rebuild_events).await? {
            print(&figure);
        }
        let catalogue =
            tokio::task::spawn_blocking(move || crate::catalogue::run(catalogue_recordings))
                .await??;
        for figure in catalogue {
            print(&figure);
        }
        for figure in crate::history::run(rebuild_events).await? {
            print(&figure);
        }
    }
    if matches!(which, BenchKind::Graphql | BenchKind::All) {
        for figure in crate::graphql_server::run(graphql).await? {
            print(&figure);
        }
    }
    if let Some(rss) = crate::resources::peak_rss_bytes() {
        print(&crate::Figure::new(
            "resources",
            "peak_rss",
            rss as f64,
            "bytes",
        ));
    }
    Ok(())
}

/// PostgreSQL's 64-writer durable append, and ours against it (same run).
async fn pg_figures(
    url: &str,
    seconds: f64,
    ours: &[crate::Figure],
) -> anyhow::Result<Vec<crate::Figure>> {
    use crate::Figure;
    let pg = crate::pg::append_rate(url, 64, std::time::Duration::from_secs_f64(seconds)).await?;
    let mut figures = vec![Figure::new(
        "log",
        "pg_append_64_writers",
        (pg * 10.0).round() / 10.0,
        "events/s",
    )];
    if let Some(our) = ours.iter().find(|f| f.figure == "append_64_writers") {
        figures.push(
            Figure::new("log", "append_64_vs_pg", our.value, "events/s")
                .against("pg_append_64_writers", pg),
        );
    }
    Ok(figures)
}
