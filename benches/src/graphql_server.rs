//! `srs bench graphql`: the real server (the [`srs_api`] library) under a
//! closed-loop load.
//!
//! The history is generated into a fresh data directory and its read
//! models rebuilt offline ([`crate::graphql::load_history`]), then a [`Server`] is opened on it
//! in this process, on this runtime, listening on loopback, with one extra
//! route, `GET /bench/plain`: a plain axum handler returning a small JSON
//! body behind the same middleware. Once `/readyz` says the read models
//! have caught up, the plain handler, the dashboard query, the filtered
//! recordings page and `{ __typename }` (the floor of any GraphQL answer)
//! are each driven by the same client (32 keep-alive
//! connections by default) for `seconds` after a warm-up. Every GraphQL
//! request asks for a fresh answer (`Cache-Control: no-cache`), so every
//! measured answer is computed from the read models. The plain
//! handler's figures are the baseline of the other two, so the ratios say
//! what GraphQL and the read models cost on top of the HTTP stack.
//!
//! Then the agents ([`crate::ingest`], 64 by default) are enrolled and
//! ingest session events alone for `seconds`: `ingest_graphql`, against
//! `append_64_writers` (the log's own durable append from 64 single-event
//! writers, [`crate::log::append_rate`]) measured right after on the same
//! machine. Then they ingest again while the dashboard and the page are
//! measured once more: `dashboard_p99_ingesting` and
//! `recordings_page_p99_ingesting`, against the plain handler's p99 as the
//! idle figures.
//!
//! Before the in-process server opens the history, `serve_rss_idle` is
//! taken from a real `srs serve` on it ([`crate::serve_rss`]), when the
//! `srs` executable is next to `srs-bench`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use srs_api::server::{ServeOptions, Server};
use srs_api::state::{HttpState, Limits};
use srs_client::Gql as _;
use tokio::sync::oneshot;

use crate::graphql::{self as bench, Endpoint};
use crate::Figure;

/// The route of the plain handler.
const PLAIN_PATH: &str = "/bench/plain";

/// How long the read models may take to catch up with the generated log.
const READY_TIMEOUT: Duration = Duration::from_secs(6 * 3_600);

/// What `srs bench graphql` runs with.
#[derive(Clone, Debug)]
pub struct GraphqlBenchOptions {
    pub recordings: u64,
    pub seconds: f64,
    pub connections: usize,
    /// Agents ingesting session events over GraphQL.
    pub agents: usize,
    /// Where the history is written and left (else a temporary directory).
    pub keep: Option<std::path::PathBuf>,
    /// The servers' page cache (`srs serve --cache-mb`).
    pub cache_mb: u64,
}

async fn plain() -> Json<serde_json::Value> {
    Json(
        serde_json::json!({ "status": "ok", "service": "srs", "version": env!("CARGO_PKG_VERSION") }),
    )
}

/// Loads the history, serves it, measures; returns the figures.
pub async fn run(options: &GraphqlBenchOptions) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let data = match &options.keep {
        Some(keep) => {
            if keep.exists() && std::fs::read_dir(keep)?.next().is_some() {
                anyhow::bail!(
                    "{} is not empty: the history needs a fresh directory",
                    keep.display()
                );
            }
            keep.clone()
        }
        None => dir.path().join("data"),
    };
    std::fs::create_dir_all(&data)?;
    eprintln!(
        "srs bench graphql: writing {} recordings into the log",
        options.recordings
    );
    let history = bench::load_history(&data, options.recordings).await?;
    eprintln!(
        "srs bench graphql: {} events written in {:.1}s, read models rebuilt in {:.1}s",
        history.events,
        history.elapsed.as_secs_f64(),
        history.rebuilt.as_secs_f64()
    );

    let mut figures = Vec::new();
    if let Some(exe) = crate::serve_rss::srs_exe() {
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty)?;
        let bare = crate::serve_rss::idle_rss(
            &exe,
            &empty,
            options.cache_mb,
            &dir.path().join("empty.log"),
        )
        .await?;
        let held = crate::serve_rss::idle_rss(
            &exe,
            &data,
            options.cache_mb,
            &dir.path().join("serve.log"),
        )
        .await?;
        eprintln!(
            "srs bench graphql: {} serving {} recordings idles at {} MiB (empty: {} MiB)",
            exe.display(),
            history.recordings,
            held >> 20,
            bare >> 20
        );
        figures.push(
            Figure::new("graphql", "serve_rss_idle", held as f64, "bytes")
                .against_size("serve_rss_empty", bare as f64),
        );
    } else {
        eprintln!(
            "srs bench graphql: no srs executable next to srs-bench, so serve_rss_idle is \
             not measured (build both: cargo build --release -p srs -p srs-bench)"
        );
    }

    let server = Server::open(ServeOptions {
        data,
        listen: "127.0.0.1:0".into(),
        // The load comes from one admin token on purpose: no rate limit.
        limits: Limits::unthrottled(),
        cors_origins: Vec::new(),
        cluster_key_file: None,
        cache_mb: options.cache_mb,
    })
    .await?;
    let addr = server.local_addr()?;
    // The first admin token: created by this open, or by the `srs serve`
    // that opened the directory before (which left it in the token file).
    let token = match server.bootstrap_secret() {
        Some(secret) => secret.to_owned(),
        None => std::fs::read_to_string(server.admin_token_path())
            .map_err(|e| anyhow::anyhow!("no admin token for the history: {e}"))?
            .trim()
            .to_owned(),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let extra: Router<HttpState> = Router::new().route(PLAIN_PATH, get(plain));
    let serving = tokio::spawn(server.run_with(extra, async {
        let _ = stopped.await;
    }));

    let caught_up = Instant::now();
    wait_ready(addr).await?;
    eprintln!(
        "srs bench graphql: read models caught up in {:.1}s",
        caught_up.elapsed().as_secs_f64()
    );

    let baseline = Endpoint::get("plain handler", PLAIN_PATH);
    let floor = Endpoint::graphql(
        "graphql floor",
        &token,
        bench::FLOOR_QUERY,
        serde_json::json!({}),
    );
    let dashboard = Endpoint::graphql(
        "dashboard",
        &token,
        bench::DASHBOARD_QUERY,
        serde_json::json!({}),
    );
    let page = Endpoint::graphql(
        "recordings page",
        &token,
        bench::RECORDINGS_PAGE_QUERY,
        serde_json::json!({ "users": history.filter_users }),
    );
    // Measuring an empty answer would flatter the figures: check the data
    // (through the GraphQL client, as a dashboard asks).
    let client = srs_client::Client::new(&format!("http://{addr}"), Some(&token));
    let answer = client
        .call(bench::DASHBOARD_QUERY, serde_json::json!({}))
        .await
        .map_err(|e| anyhow::anyhow!("the dashboard query: {e}"))?;
    let total = answer["dashboard"]["recordingsTotal"].as_u64();
    if total != Some(history.recordings) {
        anyhow::bail!(
            "the dashboard counts {total:?} recordings, {} were written",
            history.recordings
        );
    }
    let answer = client
        .call(
            bench::RECORDINGS_PAGE_QUERY,
            serde_json::json!({ "users": history.filter_users }),
        )
        .await
        .map_err(|e| anyhow::anyhow!("the recordings page: {e}"))?;
    let matches = answer["recordings"]["totalCount"].as_u64().unwrap_or(0);
    if matches == 0 && history.recordings >= 1_000 {
        anyhow::bail!("the filtered page matches nothing: {answer}");
    }
    eprintln!("srs bench graphql: the filtered page matches {matches} recordings");
    bench::check(addr, &baseline).await?;
    bench::check(addr, &floor).await?;

    let seconds = Duration::from_secs_f64(options.seconds.max(0.1));
    let warmup = Duration::from_secs_f64((options.seconds / 3.0).clamp(0.1, 2.0));
    let mut samples = Vec::new();
    // Every measured answer is computed: the requests ask for a fresh
    // answer, so no kept answer or kept figures are served.
    let floor = floor.fresh();
    let dashboard = dashboard.fresh();
    let page = page.fresh();
    for endpoint in [&baseline, &dashboard, &page, &floor] {
        let sample = bench::measure(addr, endpoint, options.connections, warmup, seconds).await?;
        eprintln!(
            "srs bench graphql: {}: {} requests",
            endpoint.name,
            sample.requests()
        );
        samples.push(sample);
    }

    // Ingesting: the agents alone, then the log's own append as baseline.
    let agents = crate::ingest::enrol(addr, &token, options.agents, "Bench agents").await?;
    let (alone, agents) = crate::ingest::drive_for(addr, agents, warmup, seconds).await?;
    eprintln!(
        "srs bench graphql: {} agents stored {} events ({} per batch), a batch's p50 {:.1} ms, \
         p99 {:.1} ms; the agents' own work (bodies, answers) used {:.1}% of a core",
        agents.len(),
        alone.events,
        crate::ingest::BATCH,
        alone.quantile_ms(0.50),
        alone.quantile_ms(0.99),
        alone.client_cores() * 100.0
    );
    let (append_64, _) = crate::log::append_rate(64, seconds).await?;

    // The read figures again, while the agents ingest.
    let ingesting = Arc::new(AtomicBool::new(false));
    let background = tokio::spawn(crate::ingest::drive(
        addr,
        agents,
        Instant::now(),
        ingesting.clone(),
    ));
    let mut loaded = Vec::new();
    let mut measured = Ok(());
    for endpoint in [&dashboard, &page] {
        match bench::measure(addr, endpoint, options.connections, warmup, seconds).await {
            Ok(sample) => loaded.push(sample),
            Err(e) => {
                measured = Err(e);
                break;
            }
        }
    }
    ingesting.store(true, Ordering::Relaxed);
    let (during, _) = background.await??;
    measured?;
    eprintln!(
        "srs bench graphql: while the reads were measured, the agents stored {:.0} events/s; \
         dashboard {} requests, recordings page {} requests",
        during.events_per_sec(),
        loaded[0].requests(),
        loaded[1].requests()
    );

    let _ = stop.send(());
    serving.await??;

    figures.extend(bench::figures("dashboard", &samples[1], &samples[0]));
    figures.extend(bench::figures("recordings_page", &samples[2], &samples[0]));
    figures.extend(bench::figures("graphql_floor", &samples[3], &samples[0]));
    figures.push(
        Figure::new(
            "graphql",
            "ingest_graphql",
            alone.events_per_sec(),
            "events/s",
        )
        .against("append_64_writers", append_64),
    );
    let plain_p99 = samples[0].quantile_ms(0.99);
    for (name, sample) in [
        ("dashboard_p99_ingesting", &loaded[0]),
        ("recordings_page_p99_ingesting", &loaded[1]),
    ] {
        figures.push(
            Figure::new("graphql", name, sample.quantile_ms(0.99), "ms")
                .against_latency("axum_json_p99", plain_p99),
        );
    }
    Ok(figures)
}

/// Polls `GET /readyz` until it answers 200.
async fn wait_ready(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let readyz = Endpoint::get("readyz", "/readyz");
    let mut reported = Instant::now();
    loop {
        if bench::check(addr, &readyz).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the read models did not catch up within {READY_TIMEOUT:?}");
        }
        if reported.elapsed() > Duration::from_secs(30) {
            eprintln!("srs bench graphql: waiting for the read models to catch up");
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
