//! The background runtime: where work nobody is waiting on runs, at lower
//! scheduling priority than the answers people wait for.
//!
//! `srs serve` runs on two tokio runtimes. The one `srs serve` starts on
//! accepts connections and executes people's requests (queries and
//! mutations of ADMIN, AUDITOR and other roles, the console, content
//! playback). This one, whose threads (workers and blocking pool alike)
//! run at [`srs_domain::priority::background_nice`] (nice 10 unless
//! `SRS_BACKGROUND_NICE` says otherwise), runs:
//!
//! - the projections and reactors folding the log into the read models
//!   (their runner tasks and the blocking work they hand off);
//! - the execution of AGENT requests (`recordSessionEvents`, heartbeats,
//!   detections): the body is read and authenticated on the serving
//!   runtime, the GraphQL execution and its time budget run here;
//! - the retention schedule (archiving and deleting what is due);
//! - a periodic pass that lowers sled's own I/O threads to the same
//!   priority (sled starts them itself).
//!
//! The log's writer threads lower themselves (`srs_domain::log`). So when
//! people's queries and 64 agents' ingest both want all of the CPU, the
//! queries keep about half their idle rate instead of a tenth, and the
//! agents' batches wait longer (README, "Reads while agents ingest").
//! With nothing interactive running, background work has the whole
//! machine. See [`srs_domain::priority`] for the mechanism.

use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

/// Worker threads of the background runtime.
const WORKERS: usize = 2;

/// How often threads that libraries start themselves are lowered.
const LOWER_EVERY: Duration = Duration::from_secs(5);

/// Names of the threads sled starts (its I/O pool, its periodic flusher).
const SLED_THREADS: [&str; 2] = ["sled-io-", "log flusher"];

/// The background runtime. Dropping it stops its tasks without waiting
/// (it may be dropped inside the serving runtime).
pub struct Background {
    runtime: Option<Runtime>,
}

impl Background {
    /// Starts the runtime and its periodic lowering of sled's threads.
    pub fn start() -> std::io::Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("srs-background")
            .on_thread_start(srs_domain::priority::background_thread)
            .enable_all()
            .build()?;
        runtime.spawn(async {
            loop {
                srs_domain::priority::background_threads_named(&SLED_THREADS);
                tokio::time::sleep(LOWER_EVERY).await;
            }
        });
        Ok(Background {
            runtime: Some(runtime),
        })
    }

    /// The runtime's handle: `spawn` on it, or `enter` it so that what
    /// starts tasks with `tokio::spawn` starts them here.
    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives until dropped")
            .handle()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background").finish_non_exhaustive()
    }
}
