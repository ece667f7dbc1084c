//! The HTTP app: routes, the GraphQL transport, operational endpoints and
//! the middleware around them.
//!
//! | route | what |
//! |---|---|
//! | `POST /graphql` | queries and mutations (`application/json` GraphQL request) |
//! | `GET /`, `/signin`, `/recordings`, `/recordings/{id}`, `/live`, `/servers`, `/policies`, `/access`, `/audit`, `GET /assets/{file}` | the web console (embedded in the binary, see [`crate::console`]) |
//! | `GET /graphql`, `GET /graphql/assets/{file}` | GraphiQL, to explore the schema in a browser, with its scripts and stylesheet (embedded in the binary, see [`crate::graphiql`]) |
//! | `GET /graphql/ws` | subscriptions over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`) |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 once the projections have caught up with the log (with a JetStream log: are within `cluster::MAX_READY_LAG` positions of the stream's last) and the log takes writes; 503 otherwise, with a `reason` when storage refuses writes, the stream does not answer or the lag is over the bound |
//! | `GET /metrics` | Prometheus text format (see [`crate::metrics`]) |
//! | `PUT /recordings/{id}/chunks/{seq}`, `PUT /recordings/{id}/asciicast`, `GET /recordings/{id}/content` | recording content (see [`crate::content`]) |
//! | `POST /backup`, `GET /log/export` | a backup or export of the running server (see [`crate::backup`]) |
//!
//! With `--cors-origin`, `/graphql` and the content routes answer the
//! named origins' CORS requests (see [`cors`]); without, no CORS headers.
//!
//! Every request runs in a `request` span carrying a fresh id, which is
//! also returned as the `x-request-id` header. The body of a request is
//! limited ([`crate::state::Limits::max_body_bytes`]); a larger one is
//! refused with 413 and a `VALIDATION` error before it is read.
//!
//! A request body that is not a GraphQL request (malformed JSON, no
//! `query`) gets 400 with a `VALIDATION` error in the GraphQL response
//! shape, so clients parse every failure the same way. A bearer token that
//! does not authenticate gets 401 with `UNAUTHENTICATED` (an expired one
//! says that it expired, and when); a request without
//! any token runs, and every operation in it that needs a principal fails
//! with `UNAUTHENTICATED` (introspection needs none: the schema is public).
//!
//! Before any GraphQL work the request is rate limited
//! ([`crate::throttle`]: 429 `RATE_LIMITED` with `Retry-After`), its query
//! text bounded and its document sized once ([`crate::graphql::cost`]: 400
//! `VALIDATION` over budget), and it runs within a time budget (504
//! `TIMEOUT` past it; shorter without a token). WebSockets are served by
//! [`crate::sockets`].

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use async_graphql::http::{WebSocketProtocols, ALL_WEBSOCKET_PROTOCOLS};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State, WebSocketUpgrade,
};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use srs_domain::model::Role;
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::bearer_token;
use crate::error::{ensure_codes, first_code, ApiError, Code};
use crate::graphql::{self, RequestContext};
use crate::sockets::budget_spent;
use crate::state::HttpState;
use crate::throttle::retry_after_secs;

/// The HTTP app over `state`. No socket involved: tests drive it with
/// `tower::ServiceExt::oneshot`, `srs serve` hands it to `axum::serve`.
pub fn app(state: HttpState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with `extra` routes mounted behind the same middleware (request
/// id, metrics, body limit), e.g. the plain handler `srs bench graphql`
/// compares the GraphQL endpoint with.
pub fn app_with(state: HttpState, extra: Router<HttpState>) -> Router {
    let max_body = state.limits().max_body_bytes;
    // What a page of another origin may call (with `--cors-origin`):
    // GraphQL over HTTP and the content routes.
    let mut cross_origin = Router::new()
        .route("/graphql", get(crate::graphiql::page).post(graphql))
        .merge(
            crate::content::routes().route_layer(middleware::from_fn_with_state(
                state.clone(),
                throttle_content,
            )),
        );
    if let Some(cors) = cors(state.cors_origins()) {
        cross_origin = cross_origin.layer(cors);
    }
    extra
        .merge(cross_origin)
        .route(
            &format!("{}/{{file}}", crate::graphiql::ASSETS_PREFIX),
            get(crate::graphiql::asset),
        )
        .merge(crate::console::routes())
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(
            crate::backup::routes().route_layer(middleware::from_fn_with_state(
                state.clone(),
                throttle_content,
            )),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The CORS layer for `origins` (`--cors-origin`), or none when no origin
/// is named: then no response carries CORS headers and browsers keep
/// other origins' pages out.
///
/// A named origin may send what srs's clients send (`GET`, `POST`, `PUT`;
/// `Authorization`, `Content-Type`, `Range`, `Cache-Control`,
/// `x-content-sha256`) and read the headers they read (`x-request-id`,
/// `Retry-After`, `Content-Range`, `Accept-Ranges`, `Content-Length`);
/// preflights are answered by the layer and kept for 10 minutes. No
/// credentials mode: srs authenticates with bearer tokens, not cookies.
/// An origin is matched exactly, as browsers send it
/// (`scheme://host[:port]`, see `srs serve --cors-origin`).
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| match HeaderValue::from_str(origin) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(origin, "not a valid origin; not allowed");
                None
            }
        })
        .collect();
    if allowed.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST, Method::PUT])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::RANGE,
                header::CACHE_CONTROL,
                HeaderName::from_static("x-content-sha256"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                header::CONTENT_RANGE,
                header::ACCEPT_RANGES,
                header::CONTENT_LENGTH,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Request id, span and HTTP metrics around every request.
async fn observe(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    // A v4 UUID from the thread's CSPRNG: no system call per request.
    let request_id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    // `MatchedPath` is a shared string: cloning it allocates nothing.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %request.method(),
        route = %route,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    state.metrics().http_request(route, status.as_u16());
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "response"
        );
    });
    let mut text = Uuid::encode_buffer();
    if let Ok(value) = HeaderValue::from_str(request_id.hyphenated().encode_lower(&mut text)) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The rate limit in front of the content routes (uploads and playback)
/// and the backup and export routes:
/// the same buckets as `POST /graphql`, per principal for a token the
/// tokens read model knows, per client address otherwise. A refusal has
/// the content routes' error shape (`{"code", "message"}`), 429 and
/// `Retry-After`.
async fn throttle_content(
    State(state): State<HttpState>,
    ClientAddr(ip): ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    let known = bearer_token(request.headers())
        .ok()
        .flatten()
        .and_then(|token| state.services().authenticate_now(token).ok().flatten());
    let throttled = match &known {
        Some(principal) => state.throttle().principal(principal.token_id),
        None => state.throttle().address(ip),
    };
    match throttled {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let body = json!({
                "code": Code::RateLimited.as_str(),
                "message": "too many requests; retry after the time in Retry-After",
            });
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs(wait).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

/// A GraphQL-shaped error response outside of execution.
fn error_response(status: StatusCode, code: Code, message: &str) -> Response {
    let body = json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }],
    });
    (status, Json(body)).into_response()
}

/// A `RATE_LIMITED` refusal: 429 with `Retry-After`.
fn rate_limited(wait: Duration, message: &str) -> Response {
    let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, message);
    let seconds = retry_after_secs(wait);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The client's address, when the app is served over a socket (tests
/// that drive the app directly have none).
struct ClientAddr(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// `POST /graphql`.
///
/// In order: the body limit; the rate limit (per principal for a token the
/// tokens read model knows, per client address otherwise); the request's
/// JSON; authentication; the query text's length and the
/// document's size ([`graphql::cost`]); then execution within the time
/// budget ([`crate::state::Limits::time_budget`]). A refusal before
/// execution answers 400 (`VALIDATION`), 401, or 429 (`RATE_LIMITED`,
/// `Retry-After`); a request over its time budget answers 504 `TIMEOUT`.
async fn graphql(
    State(state): State<HttpState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            state.metrics().graphql_request(
                "invalid",
                Code::Validation.as_str(),
                started.elapsed(),
            );
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the request body exceeds {} bytes",
                    state.limits().max_body_bytes
                )
            } else {
                "the request body could not be read".to_owned()
            };
            return error_response(status, Code::Validation, &message);
        }
    };
    // Who is asking, as the tokens read model stands now (a token issued
    // a moment ago is looked up again, with a wait, further down).
    let token = bearer_token(&headers);
    let known = match &token {
        Ok(Some(token)) => state.services().authenticate_now(token).ok().flatten(),
        _ => None,
    };
    let throttled = match &known {
        Some(principal) => state.throttle().principal(principal.token_id),
        None => state.throttle().address(ip),
    };
    if let Err(wait) = throttled {
        state
            .metrics()
            .graphql_request("throttled", Code::RateLimited.as_str(), started.elapsed());
        let message = if known.is_some() {
            "too many requests for this principal; retry after the time in Retry-After"
        } else {
            "too many requests without a valid token from this address; retry after the time in Retry-After"
        };
        return rate_limited(wait, message);
    }
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            state.metrics().graphql_request(
                "invalid",
                Code::Validation.as_str(),
                started.elapsed(),
            );
            return error_response(
                StatusCode::BAD_REQUEST,
                Code::Validation,
                &format!("the body is not a GraphQL request: {e}"),
            );
        }
    };
    let operation = request.operation_name.clone().unwrap_or_default();
    let principal = match (token, known) {
        (_, Some(principal)) => Some(principal),
        (Ok(None), None) => None,
        (Ok(Some(token)), None) => match state.authenticate(token).await {
            Ok(Some(principal)) => Some(principal),
            Ok(None) => {
                state.metrics().graphql_request(
                    &operation,
                    Code::Unauthenticated.as_str(),
                    started.elapsed(),
                );
                return error_response(
                    StatusCode::UNAUTHORIZED,
                    Code::Unauthenticated,
                    "the bearer token is not valid",
                );
            }
            Err(e) => return api_error_response(&state, &operation, started, e),
        },
        (Err(e), None) => return api_error_response(&state, &operation, started, e),
    };
    let prepared = match state.documents().document(&mut request, state.limits()) {
        Ok(prepared) => prepared,
        Err(e) => return api_error_response(&state, &operation, started, e),
    };
    let budget = state.limits().time_budget(
        principal.is_some(),
        prepared.cost.is_some_and(|cost| cost.long_running),
    );
    // An agent's request executes at background priority (see
    // [`crate::background`]); a person's here.
    let agent = principal
        .as_ref()
        .is_some_and(|principal| principal.role == Role::Agent);
    let request = request.data(RequestContext::new(principal));
    let services = state.services().clone();
    let schema = state.schema().clone();
    let execution = async move {
        let execution = schema.execute(request);
        tokio::time::timeout(budget, graphql::in_request(&services, execution)).await
    };
    let executed = match state.services().background.run_if(agent, execution).await {
        Ok(executed) => executed,
        Err(e) => {
            let error = ApiError::internal(format!("an agent's request ended: {e}"));
            return api_error_response(&state, &operation, started, error);
        }
    };
    let Ok(mut response) = executed else {
        let error = budget_spent(budget);
        state
            .metrics()
            .graphql_request(&operation, error.code.as_str(), started.elapsed());
        return error_response(StatusCode::GATEWAY_TIMEOUT, error.code, &error.message);
    };
    ensure_codes(&mut response.errors);
    state
        .metrics()
        .graphql_request(&operation, first_code(&response.errors), started.elapsed());
    let cache_control = response
        .cache_control
        .value()
        .and_then(|cache| HeaderValue::from_str(&cache).ok());
    let json = match serde_json::to_vec(&response) {
        Ok(json) => Bytes::from(json),
        Err(e) => {
            tracing::error!(error = %e, "a GraphQL response did not serialize");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                "internal error",
            );
        }
    };
    let mut http = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response();
    if let Some(value) = cache_control {
        http.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    http
}

fn api_error_response(
    state: &HttpState,
    operation: &str,
    started: Instant,
    error: ApiError,
) -> Response {
    state
        .metrics()
        .graphql_request(operation, error.code.as_str(), started.elapsed());
    let status = match error.code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Code::Timeout => StatusCode::GATEWAY_TIMEOUT,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    error_response(status, error.code, &error.message)
}

/// `GET /graphql/ws`: subscriptions. The token comes from the upgrade
/// request's `Authorization` header or from the `connection_init` payload
/// (`{"Authorization": "Bearer <token>"}`, or `{"token": "<token>"}`),
/// since browsers cannot set headers on a WebSocket. The upgrade takes a
/// token of the client address's rate and a pending slot (see
/// [`crate::sockets`]); without either it is answered 429.
async fn graphql_ws(
    State(state): State<HttpState>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = ws_protocol(&headers) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            Code::Validation,
            "Sec-WebSocket-Protocol must name graphql-transport-ws or graphql-ws",
        );
    };
    if let Err(wait) = state.throttle().address(ip) {
        return rate_limited(wait, "too many WebSocket upgrades from this address");
    }
    let Some(pending) = state.sockets().pending(ip) else {
        return rate_limited(
            Duration::from_secs(1),
            "too many WebSockets from this address (or in all) are waiting for connection_init",
        );
    };
    let header_token = bearer_token(&headers).ok().flatten().map(str::to_owned);
    let max_message = state.limits().max_body_bytes;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            state.metrics().ws_opened();
            crate::sockets::serve(state.clone(), socket, protocol, header_token, pending).await;
            state.metrics().ws_closed();
        })
}

/// The GraphQL WebSocket protocol the client asks for, as
/// `async_graphql_axum::GraphQLProtocol` reads it.
fn ws_protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
}

/// `GET /healthz`: the process is up and serving.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the read models have caught up with the log and the log
/// takes writes (503 with `reason` while storage fails, e.g. a full disk).
async fn readyz(State(state): State<HttpState>) -> Response {
    let readiness = state.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// `GET /metrics`.
async fn metrics(State(state): State<HttpState>) -> Response {
    let text = state.metrics().render(&state.gauges());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;
    use crate::server::{ServeOptions, Server};
    use crate::state::Limits;

    async fn server(dir: &std::path::Path) -> Server {
        server_with(dir, Limits::default()).await
    }

    async fn server_with(dir: &std::path::Path, limits: Limits) -> Server {
        Server::open(ServeOptions {
            data: dir.join("data"),
            listen: "127.0.0.1:0".into(),
            limits,
            cors_origins: Vec::new(),
            cluster_key_file: None,
            cache_mb: crate::server::DEFAULT_CACHE_MB,
        })
        .await
        .expect("open a server")
    }

    fn post(token: Option<&str>, body: &'static str) -> Request<Body> {
        let mut request = Request::post("/graphql").header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(Body::from(body)).unwrap()
    }

    #[test]
    fn a_request_over_its_time_budget_answers_timeout() {
        // One blocking thread, held below: `verify` walks the log on a
        // blocking thread, so it waits behind it as on a server whose
        // blocking pool is busy, and its budget is spent first.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let budget = Duration::from_millis(200);
            let server = server_with(
                dir.path(),
                Limits {
                    request_timeout: budget,
                    long_request_timeout: budget,
                    ..Limits::default()
                },
            )
            .await;
            let secret = server.bootstrap_secret().unwrap().to_owned();
            assert!(server
                .state()
                .authenticate(&secret)
                .await
                .unwrap()
                .is_some());
            let app = app(server.state().clone());
            let (release, held) = std::sync::mpsc::channel::<()>();
            let (holding, hold_started) = tokio::sync::oneshot::channel::<()>();
            let blocker = tokio::task::spawn_blocking(move || {
                let _ = holding.send(());
                let _ = held.recv();
            });
            hold_started.await.unwrap();
            let started = Instant::now();
            let response = app
                .oneshot(post(Some(&secret), r#"{"query":"{ verify { intact } }"}"#))
                .await
                .unwrap();
            let took = started.elapsed();
            release.send(()).unwrap();
            blocker.await.unwrap();
            assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
            assert_eq!(
                body_json(response).await["errors"][0]["extensions"]["code"],
                "TIMEOUT"
            );
            assert!(took >= budget, "{took:?}");
        });
    }

    #[tokio::test]
    async fn rate_limited_requests_get_429_and_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let server = server_with(
            dir.path(),
            Limits {
                rate_principal: Some(crate::state::Rate::new(0.01, 2.0)),
                rate_anonymous_ip: Some(crate::state::Rate::new(0.01, 1.0)),
                ..Limits::default()
            },
        )
        .await;
        let secret = server.bootstrap_secret().unwrap().to_owned();
        // Once the tokens read model knows the secret, its requests count
        // against the principal (before, against the address).
        assert!(server
            .state()
            .authenticate(&secret)
            .await
            .unwrap()
            .is_some());
        let app = app(server.state().clone());
        let me = r#"{"query":"{ me { role } }"}"#;
        for _ in 0..2 {
            let ok = app.clone().oneshot(post(Some(&secret), me)).await.unwrap();
            assert_eq!(ok.status(), StatusCode::OK);
        }
        let limited = app.clone().oneshot(post(Some(&secret), me)).await.unwrap();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = limited.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1);
        assert_eq!(
            body_json(limited).await["errors"][0]["extensions"]["code"],
            "RATE_LIMITED"
        );
        // Without a token: the address's own bucket (one request).
        let typename = r#"{"query":"{ __typename }"}"#;
        let first = app.clone().oneshot(post(None, typename)).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let second = app.clone().oneshot(post(None, typename)).await.unwrap();
        assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(second.headers().contains_key(header::RETRY_AFTER));
    }

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn the_app_answers_without_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let server = server(dir.path()).await;
        let secret = server
            .bootstrap_secret()
            .expect("a first admin token")
            .to_owned();
        let app = app(server.state().clone());

        let health = app
            .clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        assert!(health.headers().contains_key("x-request-id"));

        let me = app
            .clone()
            .oneshot(
                Request::post("/graphql")
                    .header("authorization", format!("Bearer {secret}"))
                    .header("content-type", "application/json")
                    .body(Body::from(r#"{"query":"{ me { role } }"}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(body_json(me).await["data"]["me"]["role"], "ADMIN");

        let malformed = app
            .oneshot(
                Request::post("/graphql")
                    .header("content-type", "application/json")
                    .body(Body::from("{"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_json(malformed).await["errors"][0]["extensions"]["code"],
            "VALIDATION"
        );
    }
}
