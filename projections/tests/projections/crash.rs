//! Crash test: a child process runs the read models over a prefilled log
//! and is killed with SIGKILL during catch-up, several times; then the
//! read models, resumed from their checkpoints, must equal a clean rebuild.
//!
//! The child is this test binary re-run on `child_runs_read_models_until_killed`
//! with `SRS_PROJECTIONS_CRASH_DIR` set (without it, that test does nothing).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use srs_domain::log::EventStore;
use srs_domain::model::DomainEvent;
use srs_projections::{ReadModels, SetOptions, Which};

use crate::common::open_store;
use crate::gen;
use crate::props::{append_all, dumps};

const DIR_VAR: &str = "SRS_PROJECTIONS_CRASH_DIR";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_runs_read_models_until_killed() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let store = open_store::<DomainEvent>(std::path::Path::new(&dir));
    // Small batches: many commits to be killed between (or inside).
    let models = ReadModels::start(
        store.clone() as Arc<dyn EventStore<DomainEvent>>,
        store.db(),
        SetOptions {
            batch_size: 16,
            rebuild_batch_size: 512,
        },
    )
    .unwrap();
    loop {
        let positions: Vec<u64> = models.statuses().iter().map(|s| s.position).collect();
        println!(
            "at {} {}",
            positions.iter().min().unwrap_or(&0),
            positions.iter().max().unwrap_or(&0)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_killed_during_catch_up_resume_to_equal_a_clean_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let store = open_store::<DomainEvent>(dir.path());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let events = gen::events(&gen::random_ops(&mut rng, 6000));
        append_all(&store, events, &[500]).await
    };
    let mut kills = 0;
    let mut last_min = 0;
    for cycle in 0..4 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::child_runs_read_models_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Kill once every projection has moved on by a little from the
        // previous cycle, while some are still behind the head.
        let target = last_min + 200 + cycle * 300;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut killed_mid_catch_up = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.split(' ');
            if parts.next() != Some("at") {
                continue;
            }
            let min: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let max: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            if (min >= target && max < head) || min >= head || Instant::now() > deadline {
                killed_mid_catch_up = max < head;
                last_min = min;
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if killed_mid_catch_up {
            kills += 1;
        }
    }
    assert!(kills >= 1, "at least one kill landed during catch-up");
    // Resume from the checkpoints left by the kills.
    let store = open_store::<DomainEvent>(dir.path());
    let models = ReadModels::start(
        store.clone() as Arc<dyn EventStore<DomainEvent>>,
        store.db(),
        SetOptions::default(),
    )
    .unwrap();
    models
        .wait_for(Which::All, head, Duration::from_secs(120))
        .await
        .unwrap();
    for s in models.statuses() {
        assert!(s.last_error.is_none(), "{s:?}");
        assert_eq!(s.generation, 1, "resumed, not rebuilt: {s:?}");
    }
    let resumed = dumps(&models);
    models.set().rebuild_all().await.unwrap();
    let rebuilt = dumps(&models);
    for ((name, a), (_, b)) in resumed.iter().zip(&rebuilt) {
        assert!(
            a == b,
            "{name}: resumed has {} entries, rebuilt {}",
            a.len(),
            b.len()
        );
    }
    models.set().shutdown().await;
}
