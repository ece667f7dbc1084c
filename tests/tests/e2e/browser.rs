//! What a browser meets: GraphiQL at `GET /graphql`, every asset it loads
//! served by srs itself (nothing from another host), and CORS for the
//! origins named with `--cors-origin` (`SRS_CORS_ORIGIN`) only.

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

/// The `src` and `href` attribute values of `html`.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let end = rest.find('"').expect("a closing quote");
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

#[tokio::test]
async fn graphiql_is_served_whole_and_cors_admits_named_origins_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start_with_env(
        &data,
        &[(
            "SRS_CORS_ORIGIN",
            "https://dashboard.example, http://localhost:3000",
        )],
    )
    .await;
    let token = srs.admin_token();
    let http = reqwest::Client::new();

    // The page and every script and stylesheet it names come from srs.
    let page = http
        .get(srs.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    let assets = references(&html);
    assert_eq!(assets.len(), 4, "{assets:?}");
    let mut scripts = 0;
    for asset in &assets {
        assert!(
            asset.starts_with('/') && !asset.starts_with("//"),
            "{asset} is not on this host"
        );
        let response = http.get(srs.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.bytes().await.unwrap();
        assert!(!body.is_empty(), "{asset}");
        if asset.ends_with(".js") {
            scripts += 1;
            assert!(kind.starts_with("text/javascript"), "{asset}: {kind}");
        } else {
            assert!(asset.ends_with(".css"), "{asset}");
            assert!(kind.starts_with("text/css"), "{asset}: {kind}");
            assert!(String::from_utf8_lossy(&body).contains(".graphiql-container"));
        }
        if asset.ends_with("graphiql.min.js") {
            assert!(String::from_utf8_lossy(&body).contains("window.GraphiQL"));
        }
    }
    assert_eq!(scripts, 3);
    let missing = http
        .get(srs.url("/graphql/assets/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The header editor starts empty, so GraphiQL's first request (the
    // schema) goes without a token, and that works.
    assert!(html.contains("defaultHeaders: ''"), "{html}");
    assert!(!html.contains("defaultHeaders: '{"), "{html}");
    let schema: Value = http
        .post(srs.url("/graphql"))
        .json(&json!({ "query": "{ __schema { queryType { name } } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schema["data"]["__schema"]["queryType"]["name"], "Query");

    // CORS: a named origin may call /graphql (preflight, then the request).
    let admin = Client::new(&srs, Some(&token));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "SR-01").await;
    let agent = admin.with_token(&agent_token);
    let started = start_recording(&agent, &server, "s-1", "CORP\\alice", &[]).await;
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    let preflight =
        |origin: &'static str, path: String, method: &'static str, headers: &'static str| {
            http.request(reqwest::Method::OPTIONS, srs.url(&path))
                .header("origin", origin)
                .header("access-control-request-method", method)
                .header("access-control-request-headers", headers)
                .send()
        };
    let allowed = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for origin in ["https://dashboard.example", "http://localhost:3000"] {
        let answer = preflight(
            origin,
            "/graphql".into(),
            "POST",
            "authorization,content-type",
        )
        .await
        .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        assert_eq!(allowed(&answer).as_deref(), Some(origin));
        let methods = answer.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(methods.contains("POST"), "{methods}");
        let headers = answer.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(headers.contains("authorization"), "{headers}");
        assert!(headers.contains("content-type"), "{headers}");
    }
    let answer = http
        .post(srs.url("/graphql"))
        .header("origin", "https://dashboard.example")
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { role } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed(&answer).as_deref(),
        Some("https://dashboard.example")
    );
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["me"]["role"], "ADMIN", "{body}");

    // ... and the content routes (an upload's preflight, a playback).
    let chunk = format!("/recordings/{recording}/chunks/0");
    let answer = preflight(
        "https://dashboard.example",
        chunk,
        "PUT",
        "authorization,x-content-sha256",
    )
    .await
    .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(
        allowed(&answer).as_deref(),
        Some("https://dashboard.example")
    );
    let content = http
        .get(srs.url(&format!("/recordings/{recording}/content")))
        .header("origin", "http://localhost:3000")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&content).as_deref(), Some("http://localhost:3000"));

    // Another origin gets no CORS header, on the preflight or the request
    // (the browser then withholds the answer from its page).
    for path in [
        "/graphql".to_owned(),
        format!("/recordings/{recording}/content"),
    ] {
        let answer = preflight("https://evil.example", path, "POST", "authorization")
            .await
            .unwrap();
        assert_eq!(allowed(&answer), None);
    }
    let answer = http
        .post(srs.url("/graphql"))
        .header("origin", "https://evil.example")
        .bearer_auth(&token)
        .json(&json!({ "query": "{ me { role } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&answer), None);
    assert!(srs.stop().success());
}
