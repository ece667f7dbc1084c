//! Starting and stopping the real `srs` binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `srs` binary cargo built for this package.
pub const SRS: &str = env!("CARGO_BIN_EXE_srs-e2e");

/// How long a start may take before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `srs serve` on a free loopback port.
pub struct Srs {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data: PathBuf,
    /// The first admin's secret when this start printed one.
    pub printed_admin_token: Option<String>,
    log: PathBuf,
}

impl Srs {
    /// Starts `srs serve` on `data` and waits until `/readyz` answers 200.
    pub async fn start(data: &Path) -> Srs {
        Self::start_with_env(data, &[]).await
    }

    pub async fn start_with_env(data: &Path, env: &[(&str, &str)]) -> Srs {
        let log = data.with_extension("log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the server log file");
        let mut command = Command::new(SRS);
        command
            .arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "info,srs_api=debug")
            .env_remove("SRS_DATA")
            .env_remove("SRS_LISTEN")
            .env_remove("SRS_LOG_URL")
            .env_remove("SRS_LOG_STREAM")
            .env_remove("SRS_LOG_MAX_BATCH")
            .env_remove("SRS_CLUSTER_KEY_FILE")
            .env_remove("SRS_BACKGROUND_NICE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn srs serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut printed_admin_token = None;
        let addr = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(remaining) {
                Ok(line) => {
                    if let Some(token) = line.strip_prefix("srs: admin token: ") {
                        printed_admin_token = Some(token.trim().to_owned());
                    }
                    if let Some(url) = line.strip_prefix("srs: listening on http://") {
                        break url.trim().parse::<SocketAddr>().expect("a socket address");
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "srs serve did not report its address; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        let srs = Srs {
            child: Some(child),
            addr,
            data: data.to_path_buf(),
            printed_admin_token,
            log,
        };
        srs.wait_ready(deadline).await;
        srs
    }

    async fn wait_ready(&self, deadline: Instant) {
        let http = reqwest::Client::new();
        loop {
            if let Ok(response) = http.get(self.url("/readyz")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "srs serve never became ready; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running child").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql/ws", self.addr)
    }

    /// The admin secret from `<data>/admin.token`.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .expect("read admin.token")
            .trim()
            .to_owned()
    }

    /// What the server wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit (graceful shutdown).
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("a running child");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = child.try_wait().expect("wait for srs") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("srs serve did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Srs {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `srs` with `args` to completion: (exit code, stdout, stderr).
pub fn run_srs(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(SRS);
    command
        .args(args)
        .env_remove("SRS_DATA")
        .env_remove("SRS_LISTEN")
        .env_remove("SRS_LOG_URL")
        .env_remove("SRS_LOG_STREAM")
        .env_remove("SRS_CLUSTER_KEY_FILE");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run srs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
