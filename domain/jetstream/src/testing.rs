//! A real three-node NATS JetStream cluster for tests (feature `testing`):
//! [`Cluster::start`] writes each server's configuration into a temporary
//! directory (free loopback ports for clients, routes and monitoring;
//! JetStream's store in the same directory; `sync_interval: always`;
//! atomic batches of up to [`MAX_BATCH_MSGS`] messages), starts three
//! `nats-server` processes, waits until JetStream has a meta leader, and
//! kills them when dropped.
//!
//! The binary is `SRS_NATS_SERVER`, else `target/nats-server/bin/nats-server`
//! of this workspace (where `.ci/install-nats` puts the pinned version),
//! else `nats-server` on `PATH`.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The most messages the test servers take in one atomic batch (what
/// `srs serve --log-max-batch` is then given; the servers' default is
/// 1,000).
pub const MAX_BATCH_MSGS: usize = 4_000;

/// How long a cluster may take to elect its meta leader.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One server of a [`Cluster`].
struct Node {
    name: String,
    client_port: u16,
    http_port: u16,
    config: PathBuf,
    log: PathBuf,
    process: Option<Child>,
}

/// Three `nats-server` processes forming one JetStream cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    binary: PathBuf,
    nodes: Vec<Node>,
    /// One cluster at a time per test process: three servers that fsync
    /// every write are a lot for a small machine, and seven clusters side
    /// by side made their requests time out. Released after the servers
    /// are killed (fields drop after [`Drop::drop`]).
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

/// Held by the running [`Cluster`] of this process.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The `nats-server` binary tests use (see the module docs).
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SRS_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let installed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/nats-server/bin/nats-server");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("nats-server")
}

/// A loopback port that is free now, drawn at random from below the
/// kernel's ephemeral range: ports from `bind(0)` come from that range, as
/// do the source ports of every outgoing connection (the servers' route
/// dials, other tests' clients), so a port picked there and released can be
/// taken again before `nats-server` binds it. Below it, only another test
/// drawing the same number can collide, and [`Cluster::start`] retries then.
fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let (low, high) = (10_000u32, ephemeral_range_start().max(10_001));
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(Instant::now().elapsed().as_nanos());
        let port = (low + (hasher.finish() % u64::from(high - low)) as u32) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The first port of the kernel's ephemeral range (32768 when unknown).
fn ephemeral_range_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// How many times [`Cluster::start`] draws new ports when a server exits at
/// start (its port was taken in the meantime).
const START_ATTEMPTS: usize = 5;

impl Cluster {
    /// Starts the three servers and waits for JetStream's meta leader.
    /// Panics (with the servers' logs) when they do not come up.
    pub fn start() -> Cluster {
        let mut attempt = 1;
        loop {
            let mut cluster = Cluster::configure();
            for i in 0..3 {
                cluster.start_node(i);
            }
            match cluster.exited_at_start() {
                Some(name) if attempt < START_ATTEMPTS => {
                    eprintln!(
                        "nats-server {name} exited at start, new ports:\n{}",
                        cluster.logs()
                    );
                    attempt += 1;
                }
                Some(name) => panic!(
                    "nats-server {name} exited at start {START_ATTEMPTS} times\n{}",
                    cluster.logs()
                ),
                None => {
                    cluster.wait_for_meta_leader();
                    return cluster;
                }
            }
        }
    }

    /// The name of a server that exited within its first second, if any.
    fn exited_at_start(&mut self) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            for node in &mut self.nodes {
                if let Some(child) = node.process.as_mut() {
                    if child.try_wait().ok().flatten().is_some() {
                        return Some(node.name.clone());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Writes the three servers' configurations on newly drawn ports.
    fn configure() -> Cluster {
        let binary = nats_server_binary();
        let version = Command::new(&binary).arg("--version").output();
        assert!(
            matches!(&version, Ok(out) if out.status.success()),
            "no nats-server at {} ({version:?}): run .ci/install-nats or set SRS_NATS_SERVER",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes = ports
            .iter()
            .map(|(_, route, _)| format!("nats-route://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(client, route, http))| {
                let name = format!("n{}", i + 1);
                let store = dir.path().join(format!("{name}-store"));
                let config = dir.path().join(format!("{name}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "server_name: {name}\n\
                         listen: 127.0.0.1:{client}\n\
                         http: 127.0.0.1:{http}\n\
                         max_payload: 8MB\n\
                         jetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n  limits {{ batch {{ max_msgs: {MAX_BATCH_MSGS} }} }}\n}}\n\
                         cluster {{\n  name: srs-test\n  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n}}\n",
                        store.display()
                    ),
                )
                .expect("write a server configuration");
                Node {
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port: client,
                    http_port: http,
                    config,
                    process: None,
                }
            })
            .collect();
        Cluster {
            dir,
            binary,
            nodes,
            _one_at_a_time: ONE_CLUSTER
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// The client URLs of the three servers, comma-separated (what
    /// `--log-url` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The servers' names, `n1` to `n3`; index `i` is `n{i+1}`.
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The index of the server named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Starts server `i` (again), on its ports and store.
    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.process.is_none(), "{} is running", node.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open a server log");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a log handle"))
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        node.process = Some(child);
    }

    /// Kills server `i` with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether server `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].process.is_some()
    }

    /// Waits until every running server reports the same JetStream meta
    /// leader, itself running, and that leader sees every other running
    /// server as a current peer. Panics with the logs after
    /// [`READY_TIMEOUT`].
    pub fn wait_for_meta_leader(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let leaders: Vec<Option<String>> = (0..self.nodes.len())
                .filter(|&i| self.is_running(i))
                .map(|i| {
                    self.monitor(i, "/jsz")
                        .ok()
                        .and_then(|jsz| jsz["meta_cluster"]["leader"].as_str().map(str::to_owned))
                })
                .collect();
            let agreed = leaders.first().cloned().flatten().filter(|leader| {
                leaders.iter().all(|l| l.as_deref() == Some(leader))
                    && self.index_of(leader).is_some_and(|i| self.is_running(i))
            });
            if agreed.is_some_and(|leader| self.leader_sees_every_running_peer(&leader)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "JetStream elected no meta leader in {READY_TIMEOUT:?} ({leaders:?})\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the meta leader `leader` counts every other running server
    /// as a current, online peer: until it does, it cannot place a
    /// three-replica stream ("no suitable peers for placement").
    fn leader_sees_every_running_peer(&self, leader: &str) -> bool {
        let Some(jsz) = self
            .index_of(leader)
            .and_then(|i| self.monitor(i, "/jsz").ok())
        else {
            return false;
        };
        let replicas = jsz["meta_cluster"]["replicas"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (0..self.nodes.len())
            .filter(|&i| self.is_running(i) && self.nodes[i].name != leader)
            .all(|i| {
                replicas.iter().any(|r| {
                    r["name"] == self.nodes[i].name.as_str()
                        && r["current"] == true
                        && r["offline"] != true
                })
            })
    }

    /// The name of the server leading stream `stream`, as the running
    /// servers' monitoring endpoints (`/jsz?streams=true`) report it.
    pub fn stream_leader(&self, stream: &str) -> Option<String> {
        (0..self.nodes.len())
            .filter(|&i| self.is_running(i))
            .find_map(|i| {
                let jsz = self.monitor(i, "/jsz?streams=true").ok()?;
                jsz["account_details"]
                    .as_array()?
                    .iter()
                    .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
                    .find(|s| s["name"] == stream)
                    .and_then(|s| s["cluster"]["leader"].as_str().map(str::to_owned))
            })
    }

    /// `GET path` on server `i`'s monitoring port, as JSON.
    pub fn monitor(&self, i: usize, path: &str) -> std::io::Result<serde_json::Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.nodes[i].http_port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let body = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|at| &answer[at + 4..])
            .unwrap_or_default();
        serde_json::from_slice(body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// The servers' logs, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                format!(
                    "--- {} (last lines)\n{}",
                    n.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The directory holding the configurations, stores and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
