//! Token management against the real binary: the `tokens` listing (the
//! first ADMIN token included, never a secret or its hash), expiry over
//! HTTP, content routes and WebSockets, rotation of an agent's token and
//! of the first ADMIN token, and when tokens were last used, kept without
//! writing to the log per request and across a restart.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use srs_domain::model::hash_secret;
use srs_domain::time::Timestamp;

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

const TOKENS: &str = "query($filter: TokenFilter, $first: Int, $after: String) {
  tokens(filter: $filter, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id name role siteIds sites { id } groups issuedAt issuedBy issuedByTokenId lastUsedAt
      expiresAt expired revoked revokedAt serverId rotatedFrom replacedBy } }
  }
}";

const ISSUE_EXPIRING: &str = "mutation($name: String!, $role: Role!, $expiresAt: DateTime) {
  issueToken(input: {name: $name, role: $role, expiresAt: $expiresAt}) { position tokenId secret token { expiresAt } }
}";

const HEARTBEAT: &str = "mutation($id: ID!) { heartbeat(serverId: $id) { position } }";

/// The nodes `tokens` lists for `filter`.
async fn tokens(admin: &Client, filter: Value) -> Vec<Value> {
    let page = admin
        .data(TOKENS, json!({ "filter": filter, "first": 500 }))
        .await;
    page["tokens"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// The one token `tokens` lists under `id`.
async fn token(admin: &Client, id: &str) -> Value {
    let all = tokens(admin, json!({})).await;
    all.into_iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("token {id} is not listed"))
}

/// The log's head, as `/readyz` reports it.
async fn log_head(srs: &Srs) -> u64 {
    let ready: Value = reqwest::get(srs.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ready["log_head"].as_u64().expect("a log head")
}

/// The close frame of `subscription`, waiting at most `bound`.
async fn closed_within(
    subscription: &mut crate::common::client::Subscription,
    bound: Duration,
) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = subscription
            .next(left)
            .await
            .unwrap_or_else(|| panic!("the socket was not closed within {bound:?}"));
        if message["type"] == "closed" {
            return message;
        }
    }
}

fn message(response: &crate::common::client::Response) -> String {
    response.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn admins_list_expire_and_rotate_tokens_and_see_when_they_were_last_used() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start(&data).await;
    let first_secret = srs.admin_token();
    let admin = Client::new(&srs, Some(&first_secret));
    let site = create_site(&admin, "Tokens").await;

    // The first ADMIN token is listed, issued by srs itself; no secret, no hash.
    let page = admin.run(TOKENS, json!({})).await;
    let text = page.body.to_string();
    assert!(!text.contains(&first_secret), "a secret in {text}");
    assert!(
        !text.contains(&hash_secret(&first_secret)),
        "a hash in {text}"
    );
    let listed = &page.data()["tokens"];
    assert_eq!(listed["totalCount"], 1, "{listed}");
    let first = &listed["edges"][0]["node"];
    let first_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(first["role"], "ADMIN");
    assert_eq!(first["issuedBy"], "system:bootstrap");
    assert!(first["issuedByTokenId"].is_null());
    assert_eq!(first["revoked"], false);
    assert_eq!(first["expired"], false);
    assert!(first["expiresAt"].is_null());
    assert!(
        first["lastUsedAt"].is_string(),
        "used by this very request: {first}"
    );
    let me = admin.data("{ me { tokenId } }", json!({})).await;
    assert_eq!(me["me"]["tokenId"], first_id.as_str());

    // An expiry in the past, or absurdly far, is VALIDATION and writes nothing.
    let head = log_head(&srs).await;
    for expires_at in [
        Timestamp::now().plus_secs(-60),
        Timestamp::now().plus_days(365 * 20),
    ] {
        let refused = admin
            .run(
                ISSUE_EXPIRING,
                json!({ "name": "late", "role": "VIEWER", "expiresAt": expires_at.to_rfc3339() }),
            )
            .await;
        refused.expect_code("VALIDATION");
        assert!(message(&refused).contains("expiresAt"), "{}", refused.body);
    }
    assert_eq!(log_head(&srs).await, head, "a refused issue wrote nothing");

    // A token that expires in a few seconds works until then...
    let expires_at = Timestamp::now().plus_secs(4);
    let issued = admin
        .data(
            ISSUE_EXPIRING,
            json!({ "name": "brief", "role": "AUDITOR", "expiresAt": expires_at.to_rfc3339() }),
        )
        .await;
    let brief_secret = issued["issueToken"]["secret"].as_str().unwrap().to_owned();
    let brief_id = issued["issueToken"]["tokenId"].as_str().unwrap().to_owned();
    assert_eq!(
        Timestamp::parse_rfc3339(issued["issueToken"]["token"]["expiresAt"].as_str().unwrap())
            .unwrap(),
        expires_at
    );
    let brief = admin.with_token(&brief_secret);
    assert_eq!(
        brief.data("{ me { name role } }", json!({})).await["me"]["name"],
        "brief"
    );
    let mut socket = brief
        .subscribe("subscription { detections { id } }", json!({}))
        .await;
    assert_eq!(socket.ack["type"], "connection_ack", "{}", socket.ack);
    // ... then is UNAUTHENTICATED, saying it expired and when, everywhere.
    let closed = closed_within(&mut socket, Duration::from_secs(15)).await;
    assert!(
        Timestamp::now() >= expires_at,
        "closed before the expiry: {closed}"
    );
    assert_eq!(closed["code"], 4403, "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{closed}"
    );
    let refused = brief.run("{ me { name } }", json!({})).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    refused.expect_code("UNAUTHENTICATED");
    let said = message(&refused);
    assert!(
        said.contains("expired") && said.contains(&expires_at.to_rfc3339()),
        "{said}"
    );
    let content = reqwest::Client::new()
        .get(srs.url(&format!("/recordings/{}/content", uuid::Uuid::now_v7())))
        .bearer_auth(&brief_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 401);
    let body: Value = content.json().await.unwrap();
    assert_eq!(body["code"], "UNAUTHENTICATED", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{body}"
    );
    let again = brief
        .subscribe("subscription { detections { id } }", json!({}))
        .await;
    assert_eq!(again.ack["type"], "closed", "{}", again.ack);
    assert!(
        again.ack["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{}",
        again.ack
    );
    let listed = token(&admin, &brief_id).await;
    assert_eq!(
        (listed["expired"].clone(), listed["revoked"].clone()),
        (json!(true), json!(false))
    );
    let expired_ones = tokens(&admin, json!({ "expired": true })).await;
    assert_eq!(expired_ones.len(), 1);
    assert_eq!(expired_ones[0]["id"], brief_id.as_str());

    // rotateAgentToken: the old agent secret is refused at once, its
    // socket closes, the new one heartbeats.
    let (server, old_agent) = connect_server(&admin, &site, "rec-tokens").await;
    let agent = admin.with_token(&old_agent);
    agent.data(HEARTBEAT, json!({ "id": server })).await;
    let mut agent_socket = agent
        .subscribe("subscription { log { position } }", json!({}))
        .await;
    assert_eq!(
        agent_socket.ack["type"], "connection_ack",
        "{}",
        agent_socket.ack
    );
    let rotated = admin
        .data(
            "mutation($id: ID!) { rotateAgentToken(serverId: $id) { position serverId agentToken agentTokenId previousTokenId server { id } } }",
            json!({ "id": server }),
        )
        .await["rotateAgentToken"]
        .clone();
    assert_eq!(
        rotated["previousTokenId"],
        server.as_str(),
        "a server's first token has its id"
    );
    let new_agent = rotated["agentToken"].as_str().unwrap().to_owned();
    let new_agent_id = rotated["agentTokenId"].as_str().unwrap().to_owned();
    assert_ne!(new_agent, old_agent);
    let refused = agent.run(HEARTBEAT, json!({ "id": server })).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    refused.expect_code("UNAUTHENTICATED");
    admin
        .with_token(&new_agent)
        .data(HEARTBEAT, json!({ "id": server }))
        .await;
    let closed = closed_within(&mut agent_socket, Duration::from_secs(5)).await;
    assert_eq!(closed["code"], 4403, "{closed}");
    let agent_tokens = tokens(&admin, json!({ "serverId": server })).await;
    assert_eq!(agent_tokens.len(), 2, "{agent_tokens:?}");
    let (old_row, new_row) = (&agent_tokens[0], &agent_tokens[1]);
    assert_eq!(old_row["id"], server.as_str());
    assert_eq!(old_row["role"], "AGENT");
    assert_eq!(old_row["revoked"], true);
    assert_eq!(old_row["replacedBy"], new_agent_id.as_str());
    assert_eq!(new_row["id"], new_agent_id.as_str());
    assert_eq!(new_row["revoked"], false);
    assert_eq!(new_row["serverId"], server.as_str());
    assert_eq!(new_row["rotatedFrom"], server.as_str());
    assert_eq!(new_row["sites"][0]["id"], site.as_str());
    assert!(
        new_row["lastUsedAt"].is_string(),
        "it heartbeated: {new_row}"
    );
    // An agent token is not revoked by hand.
    admin
        .run(
            "mutation($id: ID!) { revokeToken(id: $id) { position } }",
            json!({ "id": new_agent_id }),
        )
        .await
        .expect_code("VALIDATION");

    // Last used: per minute, and many requests write nothing to the log.
    let issued = admin
        .data(ISSUE_TOKEN, json!({ "name": "vic", "role": "VIEWER" }))
        .await["issueToken"]
        .clone();
    let viewer_secret = issued["secret"].as_str().unwrap().to_owned();
    let viewer_id = issued["tokenId"].as_str().unwrap().to_owned();
    let by_name = admin
        .data(
            "query($at: Int) { tokens(filter: {name: \"VI\", role: VIEWER}, atLeast: $at) { totalCount edges { node { id lastUsedAt } } } }",
            json!({ "at": issued["position"] }),
        )
        .await;
    assert_eq!(by_name["tokens"]["totalCount"], 1, "{by_name}");
    let node = &by_name["tokens"]["edges"][0]["node"];
    assert_eq!(node["id"], viewer_id.as_str());
    assert!(node["lastUsedAt"].is_null(), "never used yet: {node}");
    let viewer = admin.with_token(&viewer_secret);
    let head = log_head(&srs).await;
    let before = Timestamp::now();
    for _ in 0..200 {
        viewer
            .data("{ me { name } dashboard { recordingsTotal } }", json!({}))
            .await;
    }
    assert_eq!(
        log_head(&srs).await,
        head,
        "200 requests wrote nothing to the log"
    );
    let last_used = token(&admin, &viewer_id).await["lastUsedAt"]
        .as_str()
        .map(|t| Timestamp::parse_rfc3339(t).unwrap())
        .expect("set after use");
    assert!(
        last_used <= Timestamp::now() && last_used.as_secs() >= before.as_secs() / 60 * 60,
        "{last_used:?} is the minute of the use"
    );

    // Rotating the first ADMIN token with itself: the new secret is in the
    // answer and in admin.token; the old one is refused from then on.
    let rotated = admin
        .data(
            "mutation($id: ID!) { rotateToken(id: $id) { position tokenId secret previousTokenId token { role rotatedFrom } } }",
            json!({ "id": first_id }),
        )
        .await["rotateToken"]
        .clone();
    let new_admin_secret = rotated["secret"].as_str().unwrap().to_owned();
    let new_admin_id = rotated["tokenId"].as_str().unwrap().to_owned();
    assert_eq!(rotated["previousTokenId"], first_id.as_str());
    assert_eq!(rotated["token"]["role"], "ADMIN");
    assert_eq!(rotated["token"]["rotatedFrom"], first_id.as_str());
    let successor = token(&admin.with_token(&new_admin_secret), &new_admin_id).await;
    assert_eq!(successor["issuedBy"], "principal:admin");
    assert_eq!(
        successor["issuedByTokenId"],
        first_id.as_str(),
        "issued with the old token"
    );
    let refused = admin.run("{ me { name } }", json!({})).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(
        srs.admin_token(),
        new_admin_secret,
        "admin.token holds the new secret"
    );
    let admin = admin.with_token(&new_admin_secret);
    let me = admin.data("{ me { tokenId role } }", json!({})).await;
    assert_eq!(me["me"]["tokenId"], new_admin_id.as_str());
    let old = token(&admin, &first_id).await;
    assert_eq!(old["revoked"], true);
    assert_eq!(old["replacedBy"], new_admin_id.as_str());
    // The rotated token is gone for good.
    admin
        .run(
            "mutation($id: ID!) { rotateToken(id: $id) { position } }",
            json!({ "id": first_id }),
        )
        .await
        .expect_code("VALIDATION");
    // Pages: a cursor goes on after its token.
    let page = admin.data(TOKENS, json!({ "first": 2 })).await;
    let total = page["tokens"]["totalCount"].as_i64().unwrap();
    assert_eq!(total, 6, "{page}");
    assert_eq!(page["tokens"]["pageInfo"]["hasNextPage"], true);
    let rest = admin
        .data(
            TOKENS,
            json!({ "first": 500, "after": page["tokens"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(rest["tokens"]["edges"].as_array().unwrap().len(), 4);

    // When tokens were last used survives a restart; no new bootstrap
    // token is made while an ADMIN token works.
    assert!(srs.stop().success());
    let srs = Srs::start(&data).await;
    assert!(srs.printed_admin_token.is_none());
    let admin = admin.rebase(&srs);
    let kept = token(&admin, &viewer_id).await["lastUsedAt"]
        .as_str()
        .map(|t| Timestamp::parse_rfc3339(t).unwrap());
    assert_eq!(kept, Some(last_used), "kept across the restart");
    assert_eq!(
        tokens(&admin, json!({})).await.len(),
        6,
        "the listing is rebuilt from the log"
    );
    assert!(srs.stop().success());
}
