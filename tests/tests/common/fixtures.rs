//! Small builders of inputs and the GraphQL documents the tests send, so
//! tests read as journeys and not as JSON.

use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Client;

pub const CREATE_SITE: &str =
    "mutation($name: String!) { createSite(input: {name: $name}) { position siteId site { id name } } }";

pub const CONNECT_SERVER: &str = "mutation($siteId: ID!, $name: String!) {
  connectServer(input: {siteId: $siteId, name: $name, host: \"rec.example\", deployment: ON_PREMISES, version: \"2407\"}) {
    position serverId agentToken server { id status settingsVersion }
  }
}";

pub const ISSUE_TOKEN: &str = "mutation($name: String!, $role: Role!, $siteIds: [ID!], $groups: [String!]) {
  issueToken(input: {name: $name, role: $role, siteIds: $siteIds, groups: $groups}) { position tokenId secret }
}";

pub const START_RECORDING: &str = "mutation($serverId: ID!, $sessionId: String!, $user: String!, $groups: [String!], $host: String!) {
  startRecording(input: {serverId: $serverId, sessionId: $sessionId,
      session: {user: $user, groups: $groups, host: $host, clientIp: \"10.0.0.5\", clientName: \"laptop-1\", applications: [\"Excel\"]}}) {
    position recordingId recorded part repeated decision { action rule records }
  }
}";

/// Every field of every member of `SessionEventData`, for selecting a
/// session event's `data` whole (`ClipboardData.app` is nullable where
/// `AppData.app` is not, so it is aliased).
pub const EVENT_DATA: &str = "data { __typename
  ... on SessionData { clientName clientIp } ... on AppData { app pid title detail }
  ... on WebData { url browser title } ... on FileData { path newPath sizeBytes }
  ... on FileTransferData { path direction sizeBytes } ... on DeviceData { device action }
  ... on ClipboardData { clipboardApp: app format sizeBytes }
  ... on PrintData { printer document pages } ... on RegistryData { key value operation }
  ... on IdleData { seconds } ... on RdpData { target }
  ... on PerformanceData { cpuPercent memoryMb latencyMs } ... on CustomData { name data }
  ... on AccountData { account change } ... on ShreddedData { shredded } }";

pub const RECORD_EVENTS: &str = "mutation($recordingId: ID!, $events: [SessionEventInput!]!) {
  recordSessionEvents(recordingId: $recordingId, events: $events) { position accepted duplicates detections responses }
}";

/// Creates a site; returns its id.
pub async fn create_site(admin: &Client, name: &str) -> String {
    let data = admin.data(CREATE_SITE, json!({ "name": name })).await;
    data["createSite"]["siteId"]
        .as_str()
        .expect("a site id")
        .to_owned()
}

/// Connects a server; returns (server id, agent token).
pub async fn connect_server(admin: &Client, site_id: &str, name: &str) -> (String, String) {
    let data = admin
        .data(CONNECT_SERVER, json!({ "siteId": site_id, "name": name }))
        .await;
    let payload = &data["connectServer"];
    (
        payload["serverId"]
            .as_str()
            .expect("a server id")
            .to_owned(),
        payload["agentToken"]
            .as_str()
            .expect("an agent token")
            .to_owned(),
    )
}

/// Issues a token; returns its secret.
pub async fn issue_token(
    admin: &Client,
    name: &str,
    role: &str,
    site_ids: &[&str],
    groups: &[&str],
) -> String {
    let data = admin
        .data(
            ISSUE_TOKEN,
            json!({ "name": name, "role": role, "siteIds": site_ids, "groups": groups }),
        )
        .await;
    data["issueToken"]["secret"]
        .as_str()
        .expect("a secret")
        .to_owned()
}

/// Starts a recording of a session; returns the payload.
pub async fn start_recording(
    agent: &Client,
    server_id: &str,
    session_id: &str,
    user: &str,
    groups: &[&str],
) -> Value {
    agent
        .data(
            START_RECORDING,
            json!({ "serverId": server_id, "sessionId": session_id, "user": user, "groups": groups, "host": "vda-01" }),
        )
        .await["startRecording"]
        .clone()
}

/// A session event input with a fresh id.
pub fn event(event_type: &str, offset_ms: i64, data: Value) -> Value {
    json!({ "eventId": Uuid::now_v7().to_string(), "type": event_type, "offsetMs": offset_ms, "data": data })
}

/// A batch that triggers a HIGH USB detection, a MEDIUM web detection and
/// the response rule on USB.
pub fn suspicious_batch() -> Vec<Value> {
    vec![
        event("LOGON", 0, json!({})),
        event("APP_START", 1_000, json!({ "app": "excel.exe" })),
        event(
            "WEB_BROWSING",
            5_000,
            json!({ "url": "https://www.dropbox.com/upload", "browser": "Edge" }),
        ),
        event(
            "USB_MASS_STORAGE",
            9_000,
            json!({ "device": "Kingston DataTraveler" }),
        ),
    ]
}

/// The highest log position mentioned in a payload.
pub fn position(payload: &Value) -> i64 {
    payload["position"].as_i64().expect("a position")
}

/// The built-in "Record everyone with notification" policy.
pub const RECORD_EVERYONE: &str = "00000000-0000-8000-8000-000000000002";

/// Makes the site record every session (a new site records none).
pub async fn record_everyone(admin: &Client, site_id: &str) {
    admin
        .data(
            "mutation($id: ID!, $site: ID) { activatePolicy(policyId: $id, siteId: $site) { position } }",
            json!({ "id": RECORD_EVERYONE, "site": site_id }),
        )
        .await;
}

/// Grants `principal` a whole-site playback permission on `site_id` (an
/// AUDITOR sees only what a permission grants); returns its id.
pub async fn grant_whole_site(admin: &Client, site_id: &str, principal: &str) -> String {
    admin
        .data(
            "mutation($site: ID!, $who: String!) { grantPlaybackPermission(input: {siteId: $site, principal: $who, scope: {wholeSite: true}}) { permissionId } }",
            json!({ "site": site_id, "who": principal }),
        )
        .await["grantPlaybackPermission"]["permissionId"]
        .as_str()
        .expect("a permission id")
        .to_owned()
}

/// The log's head position, as the admin sees it (the furthest any read
/// model's runner knows).
pub async fn log_head(admin: &Client) -> i64 {
    admin.data("{ projections { head } }", json!({})).await["projections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["head"].as_i64())
        .max()
        .unwrap_or(0)
}

/// `(type, actor)` of every event after `head`, but the scheduler's.
pub async fn written_since(admin: &Client, head: i64) -> Vec<(String, String)> {
    let page = admin
        .data(
            "query($from: Int!) { history(filter: {fromPosition: $from}, first: 500) { edges { node { type actor } } } }",
            json!({ "from": head + 1 }),
        )
        .await;
    page["history"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["type"].as_str().unwrap().to_owned(),
                e["node"]["actor"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(_, actor)| !actor.starts_with("system:"))
        .collect()
}

/// A cluster key file (32 random bytes, mode 0600) in `dir`.
pub fn cluster_key_file(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("cluster.key");
    let mut key = Vec::new();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    std::fs::write(&path, key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Creates an event detection policy on `site_id` from the body of its
/// GraphQL input (`name: ..., logged: [...], rules: [...]`) and activates
/// it; returns its id.
pub async fn activate_detection_policy(admin: &Client, site_id: &str, input: &str) -> Value {
    let policy = admin
        .data(
            &format!(
                "mutation($site: ID!) {{ createEventDetectionPolicy(siteId: $site, input: {{ {input} }}) {{ policyId }} }}"
            ),
            json!({ "site": site_id }),
        )
        .await["createEventDetectionPolicy"]["policyId"]
        .clone();
    admin
        .data(
            "mutation($id: ID!) { activatePolicy(policyId: $id) { position } }",
            json!({ "id": policy }),
        )
        .await;
    policy
}

/// Distinctive bytes that cannot appear anywhere by chance.
pub fn payload(tag: &str, len: usize) -> Vec<u8> {
    let seed = Uuid::now_v7();
    let mut out = Vec::with_capacity(len);
    let mut n = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("{tag}:{seed}:{n};").as_bytes());
        n += 1;
    }
    out.truncate(len);
    out
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if path.exists() {
            out.push(path);
        }
    }
    out
}
