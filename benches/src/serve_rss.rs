//! `serve_rss_idle`: the resident memory of a real `srs serve` process
//! (the `srs` executable next to `srs-bench`, where `srs bench` finds
//! this one) holding the generated history, once `/readyz` answers 200 and
//! the server has settled with no request to serve. Its baseline, in the
//! same run, is the same executable on an empty data directory: the ratio
//! (`baseline / value`, higher is better) says what holding the history
//! costs on top of the bare server.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::graphql::{self as bench, Endpoint};

/// How long `srs serve` may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the read models may take to catch up.
const READY_TIMEOUT: Duration = Duration::from_secs(3_600);
/// RSS samples this far apart...
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// ...that many in a row within [`SETTLED_WITHIN`] of each other: settled.
const SETTLED_SAMPLES: usize = 4;
/// Relative spread of the settled samples.
const SETTLED_WITHIN: f64 = 0.01;
/// At most this long idle before the RSS is taken as it is.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The `srs` executable next to this one, if it is there.
pub fn srs_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let srs = exe
        .parent()?
        .join(format!("srs{}", std::env::consts::EXE_SUFFIX));
    srs.is_file().then_some(srs)
}

/// A running `srs serve`, stopped (SIGTERM, then SIGKILL) when dropped.
struct Served {
    child: Child,
}

impl Served {
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether RSS samples, oldest first, have settled: the last
/// [`SETTLED_SAMPLES`] lie within [`SETTLED_WITHIN`] of their largest.
pub fn settled(samples: &[u64]) -> bool {
    if samples.len() < SETTLED_SAMPLES {
        return false;
    }
    let last = &samples[samples.len() - SETTLED_SAMPLES..];
    let (low, high) = (
        last.iter().copied().min().unwrap_or(0),
        last.iter().copied().max().unwrap_or(0),
    );
    high > 0 && (high - low) as f64 <= high as f64 * SETTLED_WITHIN
}

/// Starts `srs serve` (`exe`) on `data` with a page cache of `cache_mb`,
/// waits for `/readyz`, lets it settle idle, and returns its RSS in bytes;
/// the server is stopped again. Its stderr goes to `log`.
pub async fn idle_rss(exe: &Path, data: &Path, cache_mb: u64, log: &Path) -> anyhow::Result<u64> {
    let stderr = std::fs::File::create(log)?;
    let child = Command::new(exe)
        .arg("serve")
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--cache-mb")
        .arg(cache_mb.to_string())
        .env_remove("SRS_DATA")
        .env_remove("SRS_LISTEN")
        .env_remove("SRS_DEMO")
        .env_remove("SRS_CACHE_MB")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", exe.display()))?;
    let mut served = Served { child };
    let pid = served.child.id();
    let fail = |what: String| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        anyhow::anyhow!(
            "srs serve on {}: {what}; the end of its log:\n{}",
            data.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    };

    let stdout = served
        .child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (lines, mut read) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        // Drains to the end so the server never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = lines.send(line);
        }
    });
    let addr: SocketAddr = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = read.recv().await {
            if let Some(url) = line.strip_prefix("srs: listening on http://") {
                return url.trim().parse().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| fail("it did not print the address it listens on".into()))?;

    let readyz = Endpoint::get("readyz", "/readyz");
    let deadline = Instant::now() + READY_TIMEOUT;
    while bench::check(addr, &readyz).await.is_err() {
        if Instant::now() > deadline {
            return Err(fail(format!("not ready within {READY_TIMEOUT:?}")));
        }
        if let Ok(Some(status)) = served.child.try_wait() {
            return Err(fail(format!("it exited ({status})")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let idle_since = Instant::now();
    let mut samples = Vec::new();
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let rss = crate::resources::rss_bytes_of(pid)
            .ok_or_else(|| fail("its RSS cannot be read (/proc)".into()))?;
        samples.push(rss);
        if settled(&samples) || idle_since.elapsed() > SETTLE_TIMEOUT {
            break;
        }
    }
    served.stop();
    Ok(samples.last().copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rss_is_settled_when_the_last_samples_barely_move() {
        assert!(!settled(&[100, 100, 100]));
        assert!(settled(&[10, 50, 1_000, 1_000, 995, 1_000]));
        assert!(!settled(&[1_000, 1_000, 1_000, 900]));
        assert!(!settled(&[0, 0, 0, 0]));
    }
}
