//! The GraphQL client of the tests: [`srs_client`] (JSON over HTTP POST,
//! and `graphql-transport-ws` over WebSocket for subscriptions), with
//! asserting helpers: a test fails where the server did not answer.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use serde_json::Value;

/// One caller: a base URL and maybe a bearer token.
#[derive(Clone)]
pub struct Client {
    inner: srs_client::Client,
}

/// A GraphQL response as received, with its HTTP status (`status`,
/// `body`, `code()`, `codes()` from [`srs_client::Response`]).
#[derive(Debug, Clone)]
pub struct Response(srs_client::Response);

impl Deref for Response {
    type Target = srs_client::Response;

    fn deref(&self) -> &srs_client::Response {
        &self.0
    }
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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Client {
            inner: srs_client::Client::with_http(http, &srs.url("/graphql"), token),
        }
    }

    /// The same server with another token.
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            inner: self.inner.with_token(token),
        }
    }

    /// The same token against another (restarted) server.
    pub fn rebase(&self, srs: &super::Srs) -> Client {
        Client::new(srs, self.token())
    }

    pub fn token(&self) -> Option<&str> {
        self.inner.token()
    }

    /// Runs `query` with `variables`.
    pub async fn run(&self, query: &str, variables: Value) -> Response {
        Response(
            self.inner
                .send(query, variables)
                .await
                .expect("POST /graphql"),
        )
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
        Response(self.inner.post_raw(body).await.expect("POST /graphql"))
    }

    /// Opens a `graphql-transport-ws` connection and subscribes to `query`.
    pub async fn subscribe(&self, query: &str, variables: Value) -> Subscription {
        Subscription(
            self.inner
                .subscribe(query, variables)
                .await
                .expect("ws connect"),
        )
    }
}

/// A live subscription (`ack`, `next(timeout)` from
/// [`srs_client::Subscription`]).
pub struct Subscription(srs_client::Subscription);

impl Deref for Subscription {
    type Target = srs_client::Subscription;

    fn deref(&self) -> &srs_client::Subscription {
        &self.0
    }
}

impl DerefMut for Subscription {
    fn deref_mut(&mut self) -> &mut srs_client::Subscription {
        &mut self.0
    }
}

impl Subscription {
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

    pub async fn close(self) {
        self.0.close().await;
    }
}
