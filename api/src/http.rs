//! The HTTP app: routes, the GraphQL transport, operational endpoints and
//! the middleware around them.
//!
//! | route | what |
//! |---|---|
//! | `POST /graphql` | queries and mutations (`application/json` GraphQL request) |
//! | `GET /graphql` | GraphiQL, to explore the schema in a browser |
//! | `GET /graphql/ws` | subscriptions over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`) |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 once the projections have caught up with the log, 503 before |
//! | `GET /metrics` | Prometheus text format (see [`crate::metrics`]) |
//! | `PUT /recordings/{id}/chunks/{seq}`, `PUT /recordings/{id}/asciicast`, `GET /recordings/{id}/content` | recording content (see [`crate::content`]) |
//!
//! Every request runs in a `request` span carrying a fresh id, which is
//! also returned as the `x-request-id` header. The body of a request is
//! limited ([`crate::state::Limits::max_body_bytes`]); a larger one is
//! refused with 413 and a `VALIDATION` error before it is read.
//!
//! A request body that is not a GraphQL request (malformed JSON, no
//! `query`) gets 400 with a `VALIDATION` error in the GraphQL response
//! shape, so clients parse every failure the same way. A bearer token that
//! does not authenticate gets 401 with `UNAUTHENTICATED`; a request without
//! any token runs, and every operation in it that needs a principal fails
//! with `UNAUTHENTICATED` (introspection needs none: the schema is public).

use std::time::Instant;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::bearer_token;
use crate::error::{ensure_codes, first_code, ApiError, Code};
use crate::graphql::{self, Answer, RequestContext, Validation};
use crate::state::AppState;

/// The HTTP app over `state`. No socket involved: tests drive it with
/// `tower::ServiceExt::oneshot`, `srs serve` hands it to `axum::serve`.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// [`app`] with `extra` routes mounted behind the same middleware (request
/// id, metrics, body limit), e.g. the plain handler `srs bench graphql`
/// compares the GraphQL endpoint with.
pub fn app_with(state: AppState, extra: Router<AppState>) -> Router {
    let max_body = state.limits().max_body_bytes;
    extra
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::content::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Request id, span and HTTP metrics around every request.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
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

/// A GraphQL-shaped error response outside of execution.
fn error_response(status: StatusCode, code: Code, message: &str) -> Response {
    let body = json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }],
    });
    (status, Json(body)).into_response()
}

/// `POST /graphql`.
async fn graphql(
    State(state): State<AppState>,
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
    // A kept answer for this caller and body is served before anything
    // else is done with the body: only an answer to this exact body was
    // kept, so it parsed, validated and was keepable (see
    // `graphql::answers`). Authentication still runs first, every time.
    if let Some(answer) = kept_answer(&state, &headers, &body) {
        state
            .metrics()
            .graphql_request(&answer.operation, "ok", started.elapsed());
        state.metrics().kept_answer();
        return answer_response(answer);
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
    let principal = match bearer_token(&headers) {
        Ok(None) => None,
        Ok(Some(token)) => match state.authenticate(token).await {
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
        Err(e) => return api_error_response(&state, &operation, started, e),
    };
    let schemas = state.schemas();
    let validation = schemas.documents.prepare(&mut request, &body);
    // Whether the answer may be kept, and for whom (see `graphql::answers`).
    let keep = match &principal {
        Some(principal) => {
            let name = request.operation_name.clone();
            request
                .parsed_query()
                .ok()
                .and_then(|document| graphql::keep(document, name.as_deref()))
                .map(|keep| (principal.clone(), keep))
        }
        None => None,
    };
    let version = srs_projections::data_version();
    let request = request.data(RequestContext::new(principal));
    let execution = async {
        match validation {
            Validation::Done => schemas.fast.execute(request).await,
            Validation::Needed => {
                let response = schemas.strict.execute(request).await;
                schemas.documents.record(&body, &response);
                response
            }
        }
    };
    let mut response = graphql::in_request(state.core(), execution).await;
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
    let answer = Answer {
        operation,
        body: json,
        cache_control,
    };
    if let Some((principal, keep)) = keep {
        // Kept only when no error and the read models did not move while
        // it was computed: one consistent state.
        if response.errors.is_empty() && srs_projections::data_version() == version {
            schemas
                .answers
                .put(&principal, &body, version, keep, answer.clone());
        }
    }
    answer_response(answer)
}

/// The answer kept for the caller of `headers` sending `body`, if any
/// and unless the client asks for a fresh one. Any doubt (no token, one
/// not known yet, a failing read) is left to the full path.
fn kept_answer(state: &AppState, headers: &HeaderMap, body: &Bytes) -> Option<Answer> {
    if wants_fresh(headers) {
        return None;
    }
    let version = srs_projections::data_version();
    let answers = &state.schemas().answers;
    if !answers.holds(version) {
        return None;
    }
    let token = bearer_token(headers).ok()??;
    let principal = state.core().authenticate_now(token).ok()??;
    answers.get(&principal, body, version)
}

/// Whether the client asked for a fresh answer (`Cache-Control: no-cache`).
fn wants_fresh(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|directive| {
            let directive = directive.trim();
            directive.eq_ignore_ascii_case("no-cache") || directive.eq_ignore_ascii_case("no-store")
        })
}

/// The HTTP response carrying a GraphQL answer.
fn answer_response(answer: Answer) -> Response {
    let mut http = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answer.body,
    )
        .into_response();
    if let Some(value) = answer.cache_control {
        http.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    http
}

fn api_error_response(
    state: &AppState,
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
        _ => StatusCode::BAD_REQUEST,
    };
    error_response(status, error.code, &error.message)
}

/// `GET /graphql/ws`: subscriptions. The token comes from the upgrade
/// request's `Authorization` header or from the `connection_init` payload
/// (`{"Authorization": "Bearer <token>"}`, or `{"token": "<token>"}`),
/// since browsers cannot set headers on a WebSocket.
async fn graphql_ws(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header_token = bearer_token(&headers).ok().flatten().map(str::to_owned);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            state.metrics().ws_opened();
            let schema = state.schema().clone();
            let init_state = state.clone();
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let token = header_token.or_else(|| token_from_init(&payload));
                    let principal = match token {
                        Some(token) => init_state
                            .authenticate(&token)
                            .await
                            .map_err(async_graphql::Error::from)?
                            .ok_or_else(|| {
                                async_graphql::Error::from(ApiError::unauthenticated(
                                    "the bearer token is not valid",
                                ))
                            })?,
                        None => {
                            return Err(ApiError::unauthenticated(
                                "connection_init carries no token",
                            )
                            .into());
                        }
                    };
                    let mut data = Data::default();
                    data.insert(RequestContext::new(Some(principal)));
                    Ok(data)
                })
                .keepalive_timeout(None)
                .serve()
                .await;
            state.metrics().ws_closed();
        })
}

/// The token in a `connection_init` payload, in any of the usual spellings.
fn token_from_init(payload: &serde_json::Value) -> Option<String> {
    let object = payload.as_object()?;
    for (key, value) in object {
        let Some(text) = value.as_str() else { continue };
        match key.to_ascii_lowercase().as_str() {
            "authorization" => {
                let token = text
                    .strip_prefix("Bearer ")
                    .or_else(|| text.strip_prefix("bearer "))?;
                return Some(token.trim().to_owned());
            }
            "token" => return Some(text.trim().to_owned()),
            _ => {}
        }
    }
    None
}

/// `GET /graphql`: GraphiQL.
async fn graphiql() -> Html<&'static str> {
    Html(GRAPHIQL)
}

/// `GET /healthz`: the process is up and serving.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the read models have caught up with the log.
async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = state.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// `GET /metrics`.
async fn metrics(State(state): State<AppState>) -> Response {
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

/// GraphiQL, loaded from a CDN by the browser (the server ships no assets).
const GRAPHIQL: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>srs GraphiQL</title>
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
  <script>
    const url = new URL('/graphql', window.location.href).toString();
    const subscriptionUrl = url.replace(/^http/, 'ws') + '/ws';
    const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl });
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, { fetcher, defaultHeaders: '{"Authorization": "Bearer <token>"}' })
    );
  </script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;
    use crate::server::{ServeOptions, Server};
    use crate::state::Limits;

    #[test]
    fn no_cache_and_no_store_ask_for_a_fresh_answer() {
        let fresh = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::CACHE_CONTROL, HeaderValue::from_static(value));
            }
            wants_fresh(&headers)
        };
        assert!(fresh(&["no-cache"]));
        assert!(fresh(&["max-age=0, No-Store"]));
        assert!(fresh(&["max-age=0", "no-cache"]));
        assert!(!fresh(&[]));
        assert!(!fresh(&["max-age=60"]));
    }

    async fn server(dir: &std::path::Path) -> Server {
        Server::open(ServeOptions {
            data: dir.join("data"),
            listen: "127.0.0.1:0".into(),
            limits: Limits::default(),
        })
        .await
        .expect("open a server")
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
