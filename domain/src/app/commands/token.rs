//! The commands of tokens: issue, bootstrap, revoke, rotate.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::actor::Actor;
use crate::app::error::AppError;
use crate::app::service::{Executed, Service};
use crate::model::{
    derived_id, hash_secret, Action, Aggregate, DomainEvent, Principal, Role, Server,
    ServerCommand, SessionEventType, Target, Token, TokenCommand, TokenError,
};
use crate::time::Timestamp;

use super::new_secret;

/// A token and its secret, returned once and never again.
#[derive(Clone, PartialEq)]
pub struct IssuedToken {
    pub token_id: Uuid,
    pub secret: String,
    pub executed: Executed,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token_id", &self.token_id)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A rotated token: its successor's id and secret (returned once), and
/// what it replaced.
#[derive(Clone, PartialEq)]
pub struct RotatedToken {
    /// The new token.
    pub token_id: Uuid,
    /// The token the rotation revoked.
    pub previous_token_id: Uuid,
    /// The new bearer secret. Only its SHA-256 is stored.
    pub secret: String,
    /// The SHA-256 of the revoked secret (so that the API can tell a file
    /// that held it, `<data>/admin.token`, and write the new one there).
    pub previous_secret_sha256: String,
    /// For an AGENT credential: its server.
    pub server_id: Option<Uuid>,
    pub executed: Executed,
}

impl std::fmt::Debug for RotatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedToken")
            .field("token_id", &self.token_id)
            .field("previous_token_id", &self.previous_token_id)
            .field("server_id", &self.server_id)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The id of the first-admin token of bootstrap round `round` (see
/// `Service::bootstrap_round`): derived, so every node of a cluster names
/// the same stream for the same round.
pub fn bootstrap_token_id(round: u64) -> Uuid {
    derived_id("srs:bootstrap-admin", &[&round.to_be_bytes()])
}

/// Where a token's events are (see `Service::token_home`).
pub(super) enum TokenHome {
    /// An issued token: the stream of its lineage's first token.
    Lineage(Uuid),
    /// An AGENT credential, on its server's stream.
    Agent { server_id: Uuid },
}

impl Service {
    // ---- tokens -------------------------------------------------------------

    /// `issueToken`: the secret is returned once; only its hash is stored.
    /// `expires_at`: when it stops authenticating (in the future, at most
    /// ten years ahead; `None`: never).
    pub async fn issue_token(
        &self,
        by: &Principal,
        name: &str,
        role: Role,
        site_ids: BTreeSet<Uuid>,
        groups: Vec<String>,
        expires_at: Option<Timestamp>,
    ) -> Result<IssuedToken, AppError> {
        self.authorize(by, Action::ManageTokens, Target::Global)
            .await?;
        self.issue(&by.actor(), name, role, site_ids, groups, expires_at)
            .await
    }

    /// The round of the next first-admin token: the first whose token
    /// ([`bootstrap_token_id`]) is not in the log. Read it before
    /// checking that no admin exists, then issue that round's token with
    /// [`Service::issue_bootstrap_token`].
    pub async fn bootstrap_round(&self) -> Result<u64, AppError> {
        let mut round = 0;
        while self
            .store
            .stream_version(&Token::stream(bootstrap_token_id(round)))
            .await?
            .is_some()
        {
            round += 1;
        }
        Ok(round)
    }

    /// The first admin token of bootstrap round `round` (see
    /// [`Service::bootstrap_round`]), issued by srs itself when it finds
    /// no admin. Its id is the round's, fixed, and it is appended only if
    /// its stream does not exist: of several starts that found no admin
    /// at the same time (several nodes on one log) exactly one issues it,
    /// the others get [`AppError::Conflict`] and check again. A round's
    /// token is issued at most once per log, however many starts race.
    pub async fn issue_bootstrap_token(
        &self,
        name: &str,
        round: u64,
    ) -> Result<IssuedToken, AppError> {
        self.issue_as(
            bootstrap_token_id(round),
            &Actor::system("bootstrap"),
            name,
            Role::Admin,
            BTreeSet::new(),
            Vec::new(),
            None,
        )
        .await
    }

    pub(super) async fn issue(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        site_ids: BTreeSet<Uuid>,
        groups: Vec<String>,
        expires_at: Option<Timestamp>,
    ) -> Result<IssuedToken, AppError> {
        self.issue_as(
            Uuid::now_v7(),
            actor,
            name,
            role,
            site_ids,
            groups,
            expires_at,
        )
        .await
    }

    /// Issues token `token_id` (a new stream: an existing one is a
    /// [`AppError::Conflict`]).
    #[allow(clippy::too_many_arguments)]
    async fn issue_as(
        &self,
        token_id: Uuid,
        actor: &Actor,
        name: &str,
        role: Role,
        site_ids: BTreeSet<Uuid>,
        groups: Vec<String>,
        expires_at: Option<Timestamp>,
    ) -> Result<IssuedToken, AppError> {
        for &site_id in &site_ids {
            self.site(site_id).await?;
        }
        let secret = new_secret();
        let command = TokenCommand::Issue {
            token_id,
            name: name.to_string(),
            role,
            site_ids,
            groups,
            secret_sha256: hash_secret(&secret),
            expires_at,
            now: self.now(),
        };
        let executed = self
            .execute::<Token>(token_id, command, actor, Some(0))
            .await?;
        Ok(IssuedToken {
            token_id,
            secret,
            executed,
        })
    }

    /// Where the events of token `token_id` are: an issued token's lineage
    /// stream (its own, or the first token's for a rotation's successor,
    /// found by the `TokenRotated` event stored under the successor's id),
    /// or the server stream of an AGENT credential (a server's first
    /// credential has the server's id; a rotated one is found by its
    /// `AgentTokenRotated` event).
    pub(super) async fn token_home(&self, token_id: Uuid) -> Result<TokenHome, AppError> {
        if self
            .store
            .stream_version(&Token::stream(token_id))
            .await?
            .is_some()
        {
            return Ok(TokenHome::Lineage(token_id));
        }
        if let Some(envelope) = self.store.read_event(token_id).await? {
            match envelope.payload {
                DomainEvent::TokenRotated { new_token_id, .. } if new_token_id == token_id => {
                    let lineage = envelope
                        .stream
                        .strip_prefix("token-")
                        .and_then(|id| Uuid::parse_str(id).ok())
                        .ok_or_else(|| {
                            AppError::Internal(format!(
                                "a token rotation on stream {}",
                                envelope.stream
                            ))
                        })?;
                    return Ok(TokenHome::Lineage(lineage));
                }
                DomainEvent::AgentTokenRotated {
                    server_id,
                    token_id: rotated,
                    ..
                } if rotated == token_id => return Ok(TokenHome::Agent { server_id }),
                _ => {}
            }
        }
        if self
            .store
            .stream_version(&Server::stream(token_id))
            .await?
            .is_some()
        {
            return Ok(TokenHome::Agent {
                server_id: token_id,
            });
        }
        Err(TokenError::NotFound.into())
    }

    /// `revokeToken`. An AGENT credential is not revoked here: its server
    /// is disconnected (`disconnectServer`) or its credential rotated.
    pub async fn revoke_token(&self, by: &Principal, token_id: Uuid) -> Result<Executed, AppError> {
        self.authorize(by, Action::ManageTokens, Target::Global)
            .await?;
        let lineage = match self.token_home(token_id).await? {
            TokenHome::Lineage(lineage) => lineage,
            TokenHome::Agent { server_id } => {
                return Err(AppError::Validation(format!(
                    "token {token_id} is the AGENT credential of server {server_id}: \
                     disconnect the server (disconnectServer) or replace the credential \
                     (rotateAgentToken)"
                )))
            }
        };
        let command = TokenCommand::Revoke {
            token_id,
            now: self.now(),
        };
        self.execute::<Token>(lineage, command, &by.actor(), None)
            .await
    }

    /// `rotateToken` (ADMIN, not scoped to sites): revokes token
    /// `token_id` and issues its successor with a new secret, returned
    /// once, in one event. An AGENT credential is rotated like
    /// [`Service::rotate_agent_token`] does (it takes no expiry).
    pub async fn rotate_token(
        &self,
        by: &Principal,
        token_id: Uuid,
        expires_at: Option<Timestamp>,
    ) -> Result<RotatedToken, AppError> {
        self.authorize(by, Action::ManageTokens, Target::Global)
            .await?;
        let lineage = match self.token_home(token_id).await? {
            TokenHome::Lineage(lineage) => lineage,
            TokenHome::Agent { server_id } => {
                if expires_at.is_some() {
                    return Err(AppError::Validation(
                        "AGENT tokens do not expire: rotate them without expiresAt".into(),
                    ));
                }
                return self.rotate_agent(by, server_id, Some(token_id)).await;
            }
        };
        let new_token_id = Uuid::now_v7();
        let secret = new_secret();
        let secret_sha256 = hash_secret(&secret);
        let now = self.now();
        let mut previous_secret_sha256 = String::new();
        let executed = self
            .execute_with::<Token, _>(lineage, &by.actor(), None, |state| {
                previous_secret_sha256 = state.secret_sha256.clone();
                state
                    .decide(TokenCommand::Rotate {
                        token_id,
                        new_token_id,
                        secret_sha256: secret_sha256.clone(),
                        expires_at,
                        now,
                    })
                    .map_err(AppError::from)
            })
            .await?;
        Ok(RotatedToken {
            token_id: new_token_id,
            previous_token_id: token_id,
            secret,
            previous_secret_sha256,
            server_id: None,
            executed,
        })
    }

    /// `rotateAgentToken` (ADMIN of the server's site): a new AGENT secret
    /// for the server, returned once; the old credential is revoked by the
    /// same event. A server the caller may not see is `NOT_FOUND`.
    pub async fn rotate_agent_token(
        &self,
        by: &Principal,
        server_id: Uuid,
    ) -> Result<RotatedToken, AppError> {
        self.rotate_agent(by, server_id, None).await
    }

    /// Rotates the server's agent credential; with `expected`, only if
    /// that is the current credential (`rotateToken` of a rotated one is
    /// refused like a rotated issued token).
    pub(super) async fn rotate_agent(
        &self,
        by: &Principal,
        server_id: Uuid,
        expected: Option<Uuid>,
    ) -> Result<RotatedToken, AppError> {
        let (_, site_id) = self
            .server_for(by, Action::ManageServers, server_id)
            .await?;
        self.authorize(by, Action::ManageServers, Target::Site(site_id))
            .await?;
        let token_id = Uuid::now_v7();
        let secret = new_secret();
        let credential_sha256 = hash_secret(&secret);
        let now = self.now();
        let mut previous = (server_id, String::new());
        let executed = self
            .execute_with::<Server, _>(server_id, &Self::principal_actor(by), None, |state| {
                let current = state.agent_token_id.unwrap_or(server_id);
                if let Some(expected) = expected {
                    if expected != current {
                        return Err(TokenError::Rotated(current).into());
                    }
                }
                previous = (current, state.credential_sha256.clone());
                state
                    .decide(ServerCommand::RotateAgentToken {
                        token_id,
                        credential_sha256: credential_sha256.clone(),
                        now,
                    })
                    .map_err(AppError::from)
            })
            .await?;
        Ok(RotatedToken {
            token_id,
            previous_token_id: previous.0,
            secret,
            previous_secret_sha256: previous.1,
            server_id: Some(server_id),
            executed,
        })
    }

    /// The session event types the site's active detection policy logs.
    pub async fn logged_types(
        &self,
        site_id: Uuid,
    ) -> Result<BTreeSet<SessionEventType>, AppError> {
        let site = self.site(site_id).await?;
        Ok(self
            .active_policies(&site.state)
            .await?
            .detection
            .body
            .logged)
    }
}

#[cfg(test)]
mod tests;
