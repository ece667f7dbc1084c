//! Scheduling priority: answers people wait for before work nobody watches.
//!
//! One `srs serve` runs two kinds of work on the same cores: answers a
//! person is waiting for (queries, the console) and background work (the
//! log's writer, the projections folding the log, agents' ingest requests,
//! sled's I/O threads). When both want the CPU the answers come first:
//! background threads run at nice [`BACKGROUND_NICE`] (10; see
//! [`background_nice`]), interactive ones at the process's own. Linux's scheduler then gives a runnable interactive
//! thread about nine times the share of a background one (weights 1024
//! against 110); with nothing interactive to do, background threads take
//! the whole CPU, so ingest alone is as fast as before. Under contention
//! agents are pushed back (their batches take longer to be acknowledged),
//! never refused, and nothing changes in what is stored or in its order.
//!
//! Linux keeps the nice value per thread (see `setpriority(2)`), which is
//! what this relies on; elsewhere these calls do nothing. Lowering a
//! priority needs no privilege; failures are logged and otherwise ignored.

/// The nice value of background threads unless `SRS_BACKGROUND_NICE`
/// says otherwise (0 is a thread's default, 19 the lowest priority).
pub const BACKGROUND_NICE: i32 = 10;

/// The nice value background threads run at: `SRS_BACKGROUND_NICE`
/// (0 to 19; 0 turns the priorities off) or [`BACKGROUND_NICE`]. Read
/// once per process.
pub fn background_nice() -> i32 {
    static NICE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *NICE.get_or_init(|| match std::env::var("SRS_BACKGROUND_NICE") {
        Ok(value) => match value.trim().parse::<i32>() {
            Ok(nice) if (0..=19).contains(&nice) => nice,
            _ => {
                tracing::warn!(
                    value,
                    "SRS_BACKGROUND_NICE is not a nice value from 0 to 19; using {BACKGROUND_NICE}"
                );
                BACKGROUND_NICE
            }
        },
        Err(_) => BACKGROUND_NICE,
    })
}

/// Lowers the calling thread to background priority.
pub fn background_thread() {
    #[cfg(target_os = "linux")]
    lower(None);
}

/// Lowers this process's threads whose names start with one of `prefixes`
/// (threads a library starts itself, e.g. sled's I/O pool `sled-io-`) to
/// background priority. Returns how many were lowered. Threads started
/// later are not affected: call it again.
pub fn background_threads_named(prefixes: &[&str]) -> usize {
    #[cfg(target_os = "linux")]
    {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        let mut lowered = 0;
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(name) = std::fs::read_to_string(task.path().join("comm")) else {
                continue;
            };
            if prefixes.iter().any(|prefix| name.starts_with(prefix))
                && rustix::process::Pid::from_raw(tid).is_some_and(|pid| lower(Some(pid)))
            {
                lowered += 1;
            }
        }
        lowered
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = prefixes;
        0
    }
}

/// The nice value of the calling thread.
pub fn current_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        rustix::process::getpriority_process(None).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Sets `thread` (`None`: the caller) to [`background_nice`] unless it is
/// at that or lower already; whether it is at background priority after.
#[cfg(target_os = "linux")]
fn lower(thread: Option<rustix::process::Pid>) -> bool {
    use rustix::process::{getpriority_process, setpriority_process};
    let background = background_nice();
    match getpriority_process(thread) {
        Ok(nice) if nice >= background => return true,
        Ok(_) => {}
        Err(error) => {
            tracing::debug!(%error, "reading a thread's priority failed");
            return false;
        }
    }
    match setpriority_process(thread, background) {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "lowering a thread's priority failed");
            false
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_background_thread_runs_at_the_background_nice_and_others_keep_theirs() {
        let before = current_nice().expect("the nice value");
        let lowered = std::thread::spawn(|| {
            background_thread();
            current_nice()
        })
        .join()
        .unwrap();
        assert_eq!(lowered, Some(background_nice().max(before)));
        // Per thread: the calling thread is untouched.
        assert_eq!(current_nice(), Some(before));
    }

    #[test]
    fn threads_are_lowered_by_name() {
        let before = current_nice().expect("the nice value");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let named = std::thread::Builder::new()
            .name("prio-probe-x".into())
            .spawn(move || {
                ready_tx.send(()).unwrap();
                done_rx.recv().unwrap();
                current_nice()
            })
            .unwrap();
        ready_rx.recv().unwrap();
        assert!(background_threads_named(&["prio-probe-"]) >= 1);
        done_tx.send(()).unwrap();
        assert_eq!(named.join().unwrap(), Some(background_nice().max(before)));
        assert_eq!(background_threads_named(&["no-such-thread-"]), 0);
    }
}
