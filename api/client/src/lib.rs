//! srs-client: the one GraphQL client of srs. Its one job is speaking to a
//! running `srs serve` as dashboards and agents do: JSON over HTTP POST
//! `/graphql` with a bearer token, and `graphql-transport-ws` over
//! WebSocket (`/graphql/ws`) for subscriptions.
//!
//! # Layout
//!
//! - [`Client`]: one base URL and maybe a bearer token; [`Client::send`]
//!   returns the [`Response`] as received (HTTP status and body),
//!   [`Gql::call`] its `data` or the first error as a [`GqlError`]
//!   (carrying the GraphQL `extensions.code`).
//! - [`Gql`]: anything that answers GraphQL; the HTTP [`Client`] and the
//!   schema run in-process (the demo seeder) both do, so code that drives
//!   the API is written once.
//! - [`Subscription`]: one `graphql-transport-ws` connection.
//! - [`base_url`]: a URL given as the server or as its `/graphql`
//!   endpoint, as the server's base.
#![forbid(unsafe_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// A GraphQL error as the API returns it, or why there was no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GqlError {
    /// `extensions.code`, or `HTTP_<status>` (an answer that is not
    /// GraphQL), `TRANSPORT` (no answer) or `BAD_RESPONSE` (an answer
    /// that is not JSON, or lacks what was asked for).
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for GqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for GqlError {}

impl GqlError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        GqlError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// The first error of a GraphQL response body, if it has any.
    pub fn from_body(body: &Value) -> Option<GqlError> {
        let first = body.get("errors")?.as_array()?.first()?;
        Some(GqlError {
            code: first["extensions"]["code"]
                .as_str()
                .unwrap_or("UNKNOWN")
                .to_string(),
            message: first["message"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Whether the request never got an answer.
    pub fn is_transport(&self) -> bool {
        self.code == "TRANSPORT"
    }
}

/// Something that answers GraphQL: the HTTP API, or the schema in-process.
#[async_trait::async_trait]
pub trait Gql: Send + Sync {
    /// Runs `query` with `variables`; `data` or the first error.
    async fn call(&self, query: &str, variables: Value) -> Result<Value, GqlError>;
}

/// A URL given as the server (`http://host:port`) or as its GraphQL
/// endpoint (`http://host:port/graphql`), as the server's base.
pub fn base_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    url.strip_suffix("/graphql").unwrap_or(url).to_string()
}

/// A GraphQL response as received, with its HTTP status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The JSON body, or the body as a JSON string when it is not JSON.
    pub body: Value,
}

impl Response {
    /// The `extensions.code` of the first error, if any.
    pub fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    /// Every error's code (`<none>` for an error without one).
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

    /// `data`, or the first error: a GraphQL error, `HTTP_<status>` for a
    /// failed answer without one, `BAD_RESPONSE` for a body that is not a
    /// JSON object.
    pub fn into_data(self) -> Result<Value, GqlError> {
        if let Some(error) = GqlError::from_body(&self.body) {
            return Err(error);
        }
        if !self.body.is_object() {
            let code = if (200..300).contains(&self.status) {
                "BAD_RESPONSE".to_string()
            } else {
                format!("HTTP_{}", self.status)
            };
            return Err(GqlError::new(&code, self.body.to_string()));
        }
        if !(200..300).contains(&self.status) {
            return Err(GqlError::new(
                &format!("HTTP_{}", self.status),
                self.body.to_string(),
            ));
        }
        Ok(self.body["data"].clone())
    }
}

/// One caller of one server: a base URL and maybe a bearer token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// How often a request answered 429 (`RATE_LIMITED`) is sent again
    /// after its `Retry-After` (0: never).
    rate_limited_retries: u32,
}

impl Client {
    /// A client of the server at `url` (its base or its `/graphql`).
    pub fn new(url: &str, token: Option<&str>) -> Client {
        Client::with_http(reqwest::Client::new(), url, token)
    }

    /// The same, over a configured HTTP client (timeouts, pool).
    pub fn with_http(http: reqwest::Client, url: &str, token: Option<&str>) -> Client {
        Client {
            http,
            base: base_url(url),
            token: token.map(str::to_owned),
            rate_limited_retries: 0,
        }
    }

    /// The same server with another token.
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Sends a request the server rate limits (429) again after the
    /// `Retry-After` it names (1 to 30 s), up to `retries` times; then
    /// the 429 is the answer.
    pub fn retry_rate_limited(mut self, retries: u32) -> Client {
        self.rate_limited_retries = retries;
        self
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The server's base URL (no trailing `/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The GraphQL endpoint, `<base>/graphql`.
    pub fn endpoint(&self) -> String {
        format!("{}/graphql", self.base)
    }

    /// The subscriptions' endpoint, `ws(s)://.../graphql/ws`.
    pub fn ws_endpoint(&self) -> String {
        let base = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.base.clone()
        };
        format!("{base}/graphql/ws")
    }

    /// The HTTP client, for the routes beside GraphQL (content, export,
    /// backup); with [`Client::authorized`] for the token.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `request` with this client's bearer token, if it has one.
    pub fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Runs `query` with `variables`; the answer as received.
    pub async fn send(&self, query: &str, variables: Value) -> Result<Response, GqlError> {
        self.post_raw(
            json!({ "query": query, "variables": variables })
                .to_string()
                .into_bytes(),
        )
        .await
    }

    /// Posts raw bytes as a GraphQL request body; the answer as received.
    pub async fn post_raw(&self, body: Vec<u8>) -> Result<Response, GqlError> {
        let mut attempt = 0;
        let response = loop {
            let request = self
                .http
                .post(self.endpoint())
                .header("content-type", "application/json")
                .body(body.clone());
            let response = self
                .authorized(request)
                .send()
                .await
                .map_err(|e| GqlError::new("TRANSPORT", e.to_string()))?;
            // Rate limited: nothing was done; wait as told and send again.
            if response.status() != reqwest::StatusCode::TOO_MANY_REQUESTS
                || attempt >= self.rate_limited_retries
            {
                break response;
            }
            attempt += 1;
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 30);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        };
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| GqlError::new("TRANSPORT", e.to_string()))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Response { status, body })
    }

    /// Opens a `graphql-transport-ws` connection, sends `connection_init`
    /// (with the token) and, once acknowledged, subscribes to `query`. A
    /// refused `connection_init` is in [`Subscription::ack`].
    pub async fn subscribe(&self, query: &str, variables: Value) -> Result<Subscription, GqlError> {
        let mut request = self
            .ws_endpoint()
            .into_client_request()
            .map_err(|e| GqlError::new("TRANSPORT", e.to_string()))?;
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| GqlError::new("TRANSPORT", e.to_string()))?;
        let mut subscription = Subscription {
            socket,
            ack: Value::Null,
        };
        let payload = match &self.token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        subscription
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await?;
        subscription.ack = subscription.next_message().await;
        if subscription.ack["type"] == "connection_ack" {
            subscription
                .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }))
                .await?;
        }
        Ok(subscription)
    }
}

#[async_trait::async_trait]
impl Gql for Client {
    async fn call(&self, query: &str, variables: Value) -> Result<Value, GqlError> {
        self.send(query, variables).await?.into_data()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A live `graphql-transport-ws` subscription (id `1`).
pub struct Subscription {
    socket: Socket,
    /// The answer to `connection_init`: `connection_ack` or a close.
    pub ack: Value,
}

impl Subscription {
    async fn send(&mut self, message: Value) -> Result<(), GqlError> {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .map_err(|e| GqlError::new("TRANSPORT", e.to_string()))
    }

    /// The next protocol message (pings answered, a close reported as
    /// `{"type":"closed", "code", "reason"}`, a broken connection as
    /// `{"type":"closed", "error"}`).
    pub async fn next_message(&mut self) -> Value {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let Ok(value) = serde_json::from_str::<Value>(&text) else {
                        return json!({ "type": "closed", "error": format!("not JSON: {text}") });
                    };
                    if value["type"] == "ping" {
                        if let Err(e) = self.send(json!({ "type": "pong" })).await {
                            return json!({ "type": "closed", "error": e.message });
                        }
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

    /// The next protocol message, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        tokio::time::timeout(timeout, self.next_message())
            .await
            .ok()
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_the_server_or_its_endpoint() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/graphql",
            "http://127.0.0.1:8080/graphql/",
        ] {
            let client = Client::new(url, None);
            assert_eq!(client.base(), "http://127.0.0.1:8080");
            assert_eq!(client.endpoint(), "http://127.0.0.1:8080/graphql");
            assert_eq!(client.ws_endpoint(), "ws://127.0.0.1:8080/graphql/ws");
        }
        assert_eq!(
            Client::new("https://srs.example", None).ws_endpoint(),
            "wss://srs.example/graphql/ws"
        );
    }

    #[test]
    fn an_answer_is_its_data_or_its_first_error() {
        let ok = Response {
            status: 200,
            body: json!({ "data": { "sites": [] } }),
        };
        assert_eq!(ok.into_data(), Ok(json!({ "sites": [] })));
        let refused = Response {
            status: 200,
            body: json!({ "data": null, "errors": [
                { "message": "no", "extensions": { "code": "FORBIDDEN" } },
                { "message": "bad" }
            ] }),
        };
        assert_eq!(refused.code(), Some("FORBIDDEN"));
        assert_eq!(refused.codes(), ["FORBIDDEN", "<none>"]);
        assert_eq!(refused.into_data(), Err(GqlError::new("FORBIDDEN", "no")));
        let proxy = Response {
            status: 502,
            body: Value::String("Bad Gateway".into()),
        };
        assert_eq!(proxy.into_data().unwrap_err().code, "HTTP_502");
        let limited = Response {
            status: 429,
            body: json!({ "message": "slow down" }),
        };
        assert_eq!(limited.into_data().unwrap_err().code, "HTTP_429");
    }
}
