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
//! - an agent's content uploads (`PUT /recordings/{id}/chunks/{seq}` and
//!   `/asciicast`): once authenticated, checking the body's SHA-256,
//!   sealing and writing the chunk and appending its event run here;
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

    /// Runs `work` on this runtime when `background` (an agent's request),
    /// else right where it is awaited. An `Err` says the task ended without
    /// an answer (it panicked, or the runtime is shutting down).
    pub async fn run_if<T: Send + 'static>(
        &self,
        background: bool,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        if background {
            self.handle().spawn(work).await
        } else {
            Ok(work.await)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_agents_work_runs_on_the_background_runtime_and_anyone_elses_where_awaited() {
        let background = Background::start().unwrap();
        let here = thread_name();
        assert_ne!(here, "srs-background");
        let agent = background.run_if(true, async { thread_name() }).await;
        assert_eq!(agent.unwrap(), "srs-background");
        let person = background.run_if(false, async { thread_name() }).await;
        assert_eq!(person.unwrap(), here);
        // A task that ends without an answer is an error, not a hang.
        let panicked = background
            .run_if(true, async { panic!("an agent's upload failed") })
            .await;
        assert!(panicked.unwrap_err().is_panic());
        // Dropped inside the serving runtime without blocking it.
        drop(background);
    }
}
