//! The subscription WebSockets (`/graphql/ws`): a session lasts only as
//! long as its credential, and no caller holds more than its share.
//!
//! - **Connection init.** A socket must send `connection_init` within
//!   [`Limits::ws_init_timeout`]; it is closed with 4408 ("Connection
//!   initialisation timeout", as graphql-ws specifies) otherwise. Until
//!   then it counts as *pending*: at most [`Limits::ws_pending_per_ip`] per
//!   client address and [`Limits::ws_pending_total`] in all; an upgrade
//!   over either is answered 429 `RATE_LIMITED` before it is upgraded.
//! - **Credential.** Every [`Limits::ws_recheck`] the socket's credential
//!   is looked up again (by the SHA-256 kept at init, never the secret):
//!   once the tokens read model has applied a revocation or a rotation
//!   (or a disconnected server's agent credential is gone), or the token
//!   has expired, the socket is closed with 4403 (the reason says which)
//!   and every subscription on it ends with it. A failing lookup closes it
//!   too (4500): a session never outlives a credential it cannot confirm.
//! - **Per principal.** At most [`Limits::ws_connections_per_principal`]
//!   initialised sockets (the init over it is refused and the socket closed
//!   with 4429) and [`Limits::ws_subscriptions_per_principal`]
//!   subscriptions over all of them (one over it gets a `RATE_LIMITED`
//!   error; the socket stays).
//! - **Cost and time.** Every operation is sized like a `POST /graphql`
//!   one ([`crate::graphql::cost`]) before async-graphql sees it; a query or
//!   mutation sent over the socket has the same time budget as over HTTP
//!   (subscriptions are long-lived by nature and have none).
//! - **Shutdown.** The socket is closed with 1001 when the server stops.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Executor, Pos, Request, Response, ServerError};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{self, BoxStream};
use futures_util::{future, SinkExt, StreamExt};
use srs_domain::model::{hash_secret, Principal};
use uuid::Uuid;

use crate::error::{ApiError, Code};
use crate::graphql::RequestContext;
use crate::state::{Credential, HttpState, Limits};
use crate::throttle::ip_key;

/// Close codes (graphql-ws's where it has one).
pub mod close {
    /// No `connection_init` in time.
    pub const INIT_TIMEOUT: u16 = 4408;
    /// The credential was revoked, rotated or expired (or its server
    /// disconnected).
    pub const REVOKED: u16 = 4403;
    /// Too many sockets for this principal.
    pub const TOO_MANY: u16 = 4429;
    /// The credential could not be checked.
    pub const INTERNAL: u16 = 4500;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
}

#[derive(Debug, Default)]
struct Counts {
    pending_total: usize,
    pending: HashMap<Option<IpAddr>, usize>,
    principals: HashMap<Uuid, PrincipalCounts>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PrincipalCounts {
    connections: usize,
    subscriptions: usize,
}

/// The open WebSockets, counted per client address and per principal.
#[derive(Debug)]
pub struct Sockets {
    limits: Limits,
    counts: Mutex<Counts>,
}

/// A socket awaiting `connection_init`; uncounted when dropped.
#[derive(Debug)]
pub struct PendingSlot {
    sockets: Arc<Sockets>,
    ip: Option<IpAddr>,
}

/// What a principal holds (an initialised socket, a subscription);
/// uncounted when dropped.
#[derive(Debug)]
pub struct PrincipalSlot {
    sockets: Arc<Sockets>,
    principal: Uuid,
    subscription: bool,
}

impl Sockets {
    pub fn new(limits: &Limits) -> Self {
        Sockets {
            limits: limits.clone(),
            counts: Mutex::new(Counts::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pending slot for a socket from `ip`, unless that address or the
    /// server holds too many already.
    pub fn pending(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<PendingSlot> {
        let ip = ip.map(ip_key);
        let mut counts = self.counts();
        let of_ip = counts.pending.get(&ip).copied().unwrap_or(0);
        if counts.pending_total >= self.limits.ws_pending_total
            || of_ip >= self.limits.ws_pending_per_ip
        {
            return None;
        }
        counts.pending_total += 1;
        *counts.pending.entry(ip).or_default() += 1;
        Some(PendingSlot {
            sockets: self.clone(),
            ip,
        })
    }

    /// A slot for an initialised socket (`subscription` false) or a
    /// subscription of `principal`, unless it holds its limit already.
    pub fn principal(
        self: &Arc<Self>,
        principal: Uuid,
        subscription: bool,
    ) -> Option<PrincipalSlot> {
        let mut counts = self.counts();
        let entry = counts.principals.entry(principal).or_default();
        let (held, limit) = if subscription {
            (
                &mut entry.subscriptions,
                self.limits.ws_subscriptions_per_principal,
            )
        } else {
            (
                &mut entry.connections,
                self.limits.ws_connections_per_principal,
            )
        };
        if *held >= limit {
            if entry.connections == 0 && entry.subscriptions == 0 {
                counts.principals.remove(&principal);
            }
            return None;
        }
        *held += 1;
        Some(PrincipalSlot {
            sockets: self.clone(),
            principal,
            subscription,
        })
    }

    /// Sockets awaiting `connection_init`.
    pub fn pending_count(&self) -> usize {
        self.counts().pending_total
    }

    /// `(connections, subscriptions)` of `principal`.
    pub fn held_by(&self, principal: Uuid) -> (usize, usize) {
        self.counts()
            .principals
            .get(&principal)
            .map_or((0, 0), |c| (c.connections, c.subscriptions))
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut counts = self.sockets.counts();
        counts.pending_total = counts.pending_total.saturating_sub(1);
        if let Some(held) = counts.pending.get_mut(&self.ip) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.pending.remove(&self.ip);
            }
        }
    }
}

impl Drop for PrincipalSlot {
    fn drop(&mut self) {
        let mut counts = self.sockets.counts();
        if let Some(entry) = counts.principals.get_mut(&self.principal) {
            if self.subscription {
                entry.subscriptions = entry.subscriptions.saturating_sub(1);
            } else {
                entry.connections = entry.connections.saturating_sub(1);
            }
            if entry.connections == 0 && entry.subscriptions == 0 {
                counts.principals.remove(&self.principal);
            }
        }
    }
}

/// Who a socket speaks for, set once by `connection_init`.
struct Session {
    principal: Principal,
    /// The SHA-256 of the secret (the secret itself is not kept).
    hash: String,
    _slot: PrincipalSlot,
}

/// The schema as one socket's operations meet it: sized, bounded per
/// principal, and with a time budget for queries and mutations.
#[derive(Clone)]
struct SocketExecutor {
    state: HttpState,
    session: Arc<OnceLock<Session>>,
}

fn error_response(error: ApiError) -> Response {
    let error: ServerError = async_graphql::Error::from(error).into_server_error(Pos::default());
    Response::from_errors(vec![error])
}

impl SocketExecutor {
    /// Bounds and sizes `request`; the operation type and the time budget
    /// it runs with.
    fn prepare(
        &self,
        request: &mut Request,
    ) -> Result<(Option<OperationType>, std::time::Duration), ApiError> {
        let limits = self.state.limits();
        let prepared = self.state.documents().document(request, limits)?;
        let long = prepared.cost.is_some_and(|c| c.long_running);
        let authenticated = self.session.get().is_some();
        Ok((prepared.operation, limits.time_budget(authenticated, long)))
    }
}

impl Executor for SocketExecutor {
    fn execute(&self, mut request: Request) -> impl Future<Output = Response> + Send {
        let this = self.clone();
        async move {
            let budget = match this.prepare(&mut request) {
                Ok((_, budget)) => budget,
                Err(e) => return error_response(e),
            };
            let execution = this.state.schema().execute(request);
            let scoped = crate::graphql::in_request(this.state.services(), execution);
            match tokio::time::timeout(budget, scoped).await {
                Ok(response) => response,
                Err(_) => error_response(budget_spent(budget)),
            }
        }
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let (operation, budget) = match self.prepare(&mut request) {
            Ok(prepared) => prepared,
            Err(e) => return stream::once(future::ready(error_response(e))).boxed(),
        };
        let schema = self.state.schema().clone();
        let data = session_data.unwrap_or_default();
        if operation == Some(OperationType::Subscription) {
            let Some(session) = self.session.get() else {
                // Not reachable: async-graphql runs nothing before the init.
                return stream::once(future::ready(error_response(ApiError::unauthenticated(
                    "connection_init first",
                ))))
                .boxed();
            };
            let limit = self.state.limits().ws_subscriptions_per_principal;
            let Some(slot) = self
                .state
                .sockets()
                .principal(session.principal.token_id, true)
            else {
                return stream::once(future::ready(error_response(ApiError::new(
                    Code::RateLimited,
                    format!("this principal already runs {limit} subscriptions; end one first"),
                ))))
                .boxed();
            };
            return schema
                .execute_stream_with_session_data(request, data)
                .map(move |response| {
                    let _held = &slot;
                    response
                })
                .boxed();
        }
        // A query or mutation: one answer, within the time budget, in one
        // request scope (one refusal fact, one playback per recording).
        let state = self.state.clone();
        let answer = async move {
            let mut responses = schema.execute_stream_with_session_data(request, data);
            let first = crate::graphql::in_request(state.services(), responses.next());
            match tokio::time::timeout(budget, first).await {
                Ok(Some(response)) => response,
                Ok(None) => Response::default(),
                Err(_) => error_response(budget_spent(budget)),
            }
        };
        stream::once(answer).boxed()
    }
}

/// The `TIMEOUT` of a request over its time budget.
pub fn budget_spent(budget: std::time::Duration) -> ApiError {
    ApiError::timeout(format!(
        "the request did not finish within its time budget of {:.1}s",
        budget.as_secs_f64()
    ))
}

/// The token in a `connection_init` payload, in any of the usual spellings.
pub fn token_from_init(payload: &serde_json::Value) -> Option<String> {
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

/// Whether the session's credential still authenticates the same
/// principal; `Err` with the close frame otherwise.
fn recheck(state: &HttpState, session: &Session) -> Result<(), (u16, String)> {
    match state.services().credential_of_hash(&session.hash) {
        Ok(Credential::Valid(principal)) if principal.token_id == session.principal.token_id => {
            Ok(())
        }
        Ok(Credential::Expired(at)) => Err((
            close::REVOKED,
            format!(
                "the token of this connection expired at {}",
                at.to_rfc3339()
            ),
        )),
        Ok(_) => Err((
            close::REVOKED,
            "the credential of this connection was revoked".to_owned(),
        )),
        Err(_) => Err((
            close::INTERNAL,
            "the credential of this connection could not be checked".to_owned(),
        )),
    }
}

/// Serves one upgraded socket until the client leaves, its credential
/// goes, it misses the init deadline or the server stops.
pub async fn serve(
    state: HttpState,
    socket: WebSocket,
    protocol: WebSocketProtocols,
    header_token: Option<String>,
    pending: PendingSlot,
) {
    let limits = state.limits().clone();
    let session: Arc<OnceLock<Session>> = Arc::new(OnceLock::new());
    // Set when the init is refused for a reason of ours (too many sockets):
    // the close frame then says so instead of async-graphql's 1002.
    let refusal: Arc<Mutex<Option<(u16, String)>>> = Arc::default();
    let (inited_tx, mut inited_rx) = tokio::sync::oneshot::channel::<()>();

    let on_init = {
        let state = state.clone();
        let session = session.clone();
        let refusal = refusal.clone();
        move |payload: serde_json::Value| async move {
            let token = header_token.or_else(|| token_from_init(&payload));
            let Some(token) = token else {
                return Err(ApiError::unauthenticated("connection_init carries no token").into());
            };
            let principal = state
                .authenticate(&token)
                .await
                .map_err(async_graphql::Error::from)?
                .ok_or_else(|| {
                    async_graphql::Error::from(ApiError::unauthenticated(
                        "the bearer token is not valid",
                    ))
                })?;
            let Some(slot) = state.sockets().principal(principal.token_id, false) else {
                let message = format!(
                    "this principal already holds {} connections",
                    state.limits().ws_connections_per_principal
                );
                if let Ok(mut refusal) = refusal.lock() {
                    *refusal = Some((close::TOO_MANY, message.clone()));
                }
                return Err(ApiError::new(Code::RateLimited, message).into());
            };
            let mut data = Data::default();
            data.insert(RequestContext::new(Some(principal.clone())));
            let _ = session.set(Session {
                principal,
                hash: hash_secret(&token),
                _slot: slot,
            });
            let _ = inited_tx.send(());
            Ok(data)
        }
    };

    let (mut sink, input) = socket.split();
    let input = input
        .take_while(|message| future::ready(message.is_ok()))
        .filter_map(|message| {
            future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });
    let executor = SocketExecutor {
        state: state.clone(),
        session: session.clone(),
    };
    let graphql = async_graphql::http::WebSocket::new(executor, input, protocol)
        .on_connection_init(on_init)
        .keepalive_timeout(None);
    futures_util::pin_mut!(graphql);

    let mut pending = Some(pending);
    let init_deadline = tokio::time::sleep(limits.ws_init_timeout);
    tokio::pin!(init_deadline);
    let mut recheck_every = tokio::time::interval(limits.ws_recheck);
    recheck_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = state.services().shutdown.clone();

    let close = loop {
        tokio::select! {
            message = graphql.next() => match message {
                Some(WsMessage::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break None;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    let ours = refusal.lock().ok().and_then(|mut r| r.take());
                    break Some(ours.unwrap_or((code, reason)));
                }
                // The legacy protocol reports a refused init as a message,
                // then ends: close with our reason, if any.
                None => break refusal.lock().ok().and_then(|mut r| r.take()),
            },
            () = &mut init_deadline, if pending.is_some() => {
                break Some((close::INIT_TIMEOUT, "Connection initialisation timeout".to_owned()));
            }
            _ = &mut inited_rx, if pending.is_some() => {
                // Initialised (or the init failed and the socket is closing):
                // no longer pending either way.
                pending = None;
            }
            _ = recheck_every.tick(), if session.get().is_some() => {
                if let Some(session) = session.get() {
                    if let Err(frame) = recheck(&state, session) {
                        tracing::info!(principal = %session.principal.token_id, reason = %frame.1, "closing a WebSocket");
                        break Some(frame);
                    }
                }
            }
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                break Some((close::GOING_AWAY, "the server is shutting down".to_owned()));
            }
        }
    };
    drop(pending);
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            ws_pending_per_ip: 2,
            ws_pending_total: 3,
            ws_connections_per_principal: 2,
            ws_subscriptions_per_principal: 1,
            ..Limits::default()
        }
    }

    #[test]
    fn pending_sockets_are_bounded_per_address_and_in_all() {
        let sockets = Arc::new(Sockets::new(&limits()));
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        let first = sockets.pending(a).unwrap();
        let _second = sockets.pending(a).unwrap();
        assert!(sockets.pending(a).is_none(), "per address");
        let _third = sockets.pending(b).unwrap();
        assert!(sockets.pending(b).is_none(), "in all");
        drop(first);
        assert!(
            sockets.pending(b).is_some(),
            "a slot comes back when dropped"
        );
    }

    #[test]
    fn connections_and_subscriptions_are_bounded_per_principal() {
        let sockets = Arc::new(Sockets::new(&limits()));
        let (p, q) = (Uuid::now_v7(), Uuid::now_v7());
        let c1 = sockets.principal(p, false).unwrap();
        let _c2 = sockets.principal(p, false).unwrap();
        assert!(sockets.principal(p, false).is_none());
        assert!(sockets.principal(q, false).is_some(), "another principal");
        let s1 = sockets.principal(p, true).unwrap();
        assert!(sockets.principal(p, true).is_none());
        assert_eq!(sockets.held_by(p), (2, 1));
        drop((c1, s1));
        assert_eq!(sockets.held_by(p), (1, 0));
    }

    #[test]
    fn init_payload_tokens_in_the_usual_spellings() {
        let token = |v: serde_json::Value| token_from_init(&v);
        assert_eq!(
            token(serde_json::json!({"Authorization": "Bearer a"})).as_deref(),
            Some("a")
        );
        assert_eq!(
            token(serde_json::json!({"token": " b "})).as_deref(),
            Some("b")
        );
        assert_eq!(token(serde_json::json!({"other": "c"})), None);
    }
}
