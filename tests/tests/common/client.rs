//! A GraphQL client as dashboards and agents use one: JSON over HTTP POST,
//! and `graphql-transport-ws` over WebSocket for subscriptions.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// One caller: a base URL and maybe a bearer token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    ws_url: String,
    token: Option<String>,
}

/// A GraphQL response as received, with its HTTP status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    /// `data`, asserting there were no errors.
    #[track_caller]
    pub fn data(&self) -> &Value {
        assert!(
            self.body
                .get("errors")
                .is_none_or(|e| e.as_array().is_some_and(Vec::is_empty)),
            "unexpected errors (HTTP {}): {}",
            self.status,
            self.body
        );
        &self.body["data"]
    }

    /// The `extensions.code` of the first error, if any.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    /// Every error's code.
    pub fn codes(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        e["extensions"]["code"]
                            .as_str()
                            .unwrap_or("<none>")
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts the first error's code.
    #[track_caller]
    pub fn expect_code(&self, code: &str) {
        assert_eq!(
            self.code(),
            Some(code),
            "expected {code}, got (HTTP {}): {}",
            self.status,
            self.body
        );
    }
}

impl Client {
    pub fn new(srs: &super::Srs, token: Option<&str>) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            url: srs.url("/graphql"),
            ws_url: srs.ws_url(),
            token: token.map(str::to_owned),
        }
    }

    /// The same server with another token.
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The same token against another (restarted) server.
    pub fn rebase(&self, srs: &super::Srs) -> Client {
        Client::new(srs, self.token.as_deref())
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Runs `query` with `variables`.
    pub async fn run(&self, query: &str, variables: Value) -> Response {
        self.post_json(&json!({ "query": query, "variables": variables }))
            .await
    }

    /// Runs `query` and returns `data`, asserting there were no errors.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        self.run(query, variables).await.data().clone()
    }

    /// Posts a JSON body as-is.
    pub async fn post_json(&self, body: &Value) -> Response {
        self.post_raw(body.to_string().into_bytes()).await
    }

    /// Posts raw bytes as a GraphQL request body.
    pub async fn post_raw(&self, body: Vec<u8>) -> Response {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /graphql");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Response { status, body }
    }

    /// Opens a `graphql-transport-ws` connection and subscribes to `query`.
    pub async fn subscribe(&self, query: &str, variables: Value) -> Subscription {
        let mut request = self
            .ws_url
            .as_str()
            .into_client_request()
            .expect("a ws request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connect");
        let payload = match &self.token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        send(
            &mut socket,
            json!({ "type": "connection_init", "payload": payload }),
        )
        .await;
        let ack = next_message(&mut socket).await;
        let mut subscription = Subscription { socket, ack };
        if subscription.ack["type"] == "connection_ack" {
            send(
                &mut subscription.socket,
                json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }),
            )
            .await;
        }
        subscription
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("ws send");
}

/// The next protocol message (pings answered, closes reported as `{"type":"closed"}`).
async fn next_message(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).expect("a JSON message");
                if value["type"] == "ping" {
                    send(socket, json!({ "type": "pong" })).await;
                    continue;
                }
                return value;
            }
            Some(Ok(Message::Close(frame))) => {
                return json!({ "type": "closed", "code": frame.as_ref().map(|f| u16::from(f.code)), "reason": frame.map(|f| f.reason.to_string()) });
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return json!({ "type": "closed", "error": e.to_string() }),
            None => return json!({ "type": "closed" }),
        }
    }
}

/// A live subscription.
pub struct Subscription {
    socket: Socket,
    /// The answer to `connection_init`: `connection_ack` or a close.
    pub ack: Value,
}

impl Subscription {
    /// The next protocol message, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        tokio::time::timeout(timeout, next_message(&mut self.socket))
            .await
            .ok()
    }

    /// The next `next` payload's `data`, panicking on errors or silence.
    pub async fn next_data(&mut self, timeout: Duration) -> Value {
        let message = self
            .next(timeout)
            .await
            .expect("a subscription message in time");
        assert_eq!(message["type"], "next", "unexpected message: {message}");
        assert!(
            message["payload"]["errors"].is_null(),
            "subscription errors: {message}"
        );
        message["payload"]["data"].clone()
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
