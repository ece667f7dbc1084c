//! Credentials: issued tokens and server agent credentials, found by the
//! SHA-256 of their secret for authentication, and listed for the admins
//! who manage them (`tokens`).
//!
//! Every credential is a [`TokenRow`], never with its secret or hash:
//! issued tokens (`TokenIssued`, a rotation's successor from
//! `TokenRotated`) and AGENT credentials (a server's first one from
//! `ServerConnected` / `ServerInstallRequested`, with the server's id as
//! its token id; later ones from `AgentTokenRotated`). A rotation revokes
//! the old row (`replaced_by`) and adds the new one (`rotated_from`) in
//! the commit of its one event. A disconnected server's current agent
//! row is revoked. Expiry is kept (`expires_at`) but judged by the caller
//! against its clock: nothing happens in the log when a token expires.
//!
//! | key | value |
//! |---|---|
//! | `t/` token id | [`TokenRow`] |
//! | `h/` secret SHA-256 (hex) | the token id ([`CredentialRef`]) |
//! | `g/` server id | the id of the server's current agent credential |

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use srs_domain::actor::Actor;
use srs_domain::log::Envelope;
use srs_domain::model::{DomainEvent, Principal, Role};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{get, norm, values, TreeRef};
use crate::codec::Key;
use crate::engine::{Overlay, Projection};
use crate::error::Result;

/// A credential (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: Uuid,
    /// The principal's name (`agent:<server id>` for an AGENT credential).
    pub name: String,
    pub role: Role,
    /// Empty: all sites. An AGENT credential's: its server's site.
    pub site_ids: BTreeSet<Uuid>,
    pub groups: Vec<String>,
    pub issued_at: Timestamp,
    /// The actor that issued it (`system:bootstrap` for the first ADMIN
    /// token of a data directory).
    pub issued_by: String,
    /// The token the issuing principal used, when a principal issued it.
    pub issued_by_token: Option<Uuid>,
    pub revoked_at: Option<Timestamp>,
    /// When it stops authenticating; `None`: never.
    pub expires_at: Option<Timestamp>,
    /// For an AGENT credential: its server.
    pub server_id: Option<Uuid>,
    /// The token this one replaced by rotation.
    pub rotated_from: Option<Uuid>,
    /// The token that replaced this one by rotation.
    pub replaced_by: Option<Uuid>,
}

impl TokenRow {
    /// Whether the token has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The principal this credential authenticates, unless revoked (the
    /// caller judges expiry, with its clock).
    pub fn principal(&self) -> Option<Principal> {
        if self.revoked_at.is_some() {
            return None;
        }
        if let (Role::Agent, Some(server_id)) = (self.role, self.server_id) {
            let site_id = self.site_ids.iter().next().copied()?;
            return Some(Principal::agent_token(self.id, server_id, site_id));
        }
        Some(Principal {
            token_id: self.id,
            name: self.name.clone(),
            role: self.role,
            site_ids: self.site_ids.clone(),
            groups: self.groups.clone(),
            server_id: None,
        })
    }
}

/// What a secret hash stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialRef {
    /// The credential's row (`t/` id).
    Token(Uuid),
}

fn token_key(id: Uuid) -> Vec<u8> {
    Key::new(b"t/").uuid(id).build()
}

fn hash_key(sha256: &str) -> Vec<u8> {
    Key::new(b"h/").str(&sha256.to_ascii_lowercase()).build()
}

fn agent_key(server: Uuid) -> Vec<u8> {
    Key::new(b"g/").uuid(server).build()
}

/// The projection that maintains [`Tokens`].
pub struct TokensProjection;

impl TokensProjection {
    pub const NAME: &'static str = "tokens";
}

/// Stores `row` and the hash that finds it.
fn add(w: &mut Overlay, row: &TokenRow, sha256: &str) -> Result<()> {
    w.put_value(hash_key(sha256), &CredentialRef::Token(row.id))?;
    w.put_value(token_key(row.id), row)
}

/// Revokes row `id` at `at`, replaced by `by` when a rotation did it.
fn revoke(w: &mut Overlay, id: Uuid, at: Timestamp, by: Option<Uuid>) -> Result<()> {
    if let Some(mut row) = w.get_value::<TokenRow>(&token_key(id))? {
        if row.revoked_at.is_none() {
            row.revoked_at = Some(at);
        }
        row.replaced_by = by.or(row.replaced_by);
        w.put_value(token_key(id), &row)?;
    }
    Ok(())
}

/// The token of the principal that caused `e`, if a principal did.
fn issuing_token(e: &Envelope<DomainEvent>) -> Option<Uuid> {
    match &e.actor {
        Actor::Principal { token_id, .. } => Some(*token_id),
        Actor::Agent { .. } | Actor::System { .. } => None,
    }
}

fn agent_row(
    e: &Envelope<DomainEvent>,
    token_id: Uuid,
    server_id: Uuid,
    site_id: Uuid,
    at: Timestamp,
) -> TokenRow {
    TokenRow {
        id: token_id,
        name: format!("agent:{server_id}"),
        role: Role::Agent,
        site_ids: BTreeSet::from([site_id]),
        groups: Vec::new(),
        issued_at: at,
        issued_by: e.actor.label(),
        issued_by_token: issuing_token(e),
        revoked_at: None,
        expires_at: None,
        server_id: Some(server_id),
        rotated_from: None,
        replaced_by: None,
    }
}

impl Projection<DomainEvent> for TokensProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        // 2: agent credentials and rotations are rows; expiry.
        2
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        use DomainEvent as E;
        match &e.payload {
            E::TokenIssued {
                token_id,
                name,
                role,
                site_ids,
                groups,
                secret_sha256,
                at,
            } => add(
                w,
                &TokenRow {
                    id: *token_id,
                    name: name.clone(),
                    role: *role,
                    site_ids: site_ids.clone(),
                    groups: groups.clone(),
                    issued_at: *at,
                    issued_by: e.actor.label(),
                    issued_by_token: issuing_token(e),
                    revoked_at: None,
                    expires_at: None,
                    server_id: None,
                    rotated_from: None,
                    replaced_by: None,
                },
                secret_sha256,
            ),
            E::TokenExpirySet {
                token_id,
                expires_at,
                ..
            } => {
                if let Some(mut row) = w.get_value::<TokenRow>(&token_key(*token_id))? {
                    row.expires_at = Some(*expires_at);
                    w.put_value(token_key(*token_id), &row)?;
                }
                Ok(())
            }
            E::TokenRevoked { token_id, at, .. } => revoke(w, *token_id, *at, None),
            E::TokenRotated {
                token_id,
                new_token_id,
                name,
                role,
                site_ids,
                groups,
                secret_sha256,
                expires_at,
                at,
            } => {
                revoke(w, *token_id, *at, Some(*new_token_id))?;
                add(
                    w,
                    &TokenRow {
                        id: *new_token_id,
                        name: name.clone(),
                        role: *role,
                        site_ids: site_ids.clone(),
                        groups: groups.clone(),
                        issued_at: *at,
                        issued_by: e.actor.label(),
                        issued_by_token: issuing_token(e),
                        revoked_at: None,
                        expires_at: *expires_at,
                        server_id: None,
                        rotated_from: Some(*token_id),
                        replaced_by: None,
                    },
                    secret_sha256,
                )
            }
            E::ServerConnected {
                server_id,
                site_id,
                credential_sha256,
                at,
                ..
            }
            | E::ServerInstallRequested {
                server_id,
                site_id,
                credential_sha256,
                at,
                ..
            } => {
                w.put_value(agent_key(*server_id), server_id)?;
                add(
                    w,
                    &agent_row(e, *server_id, *server_id, *site_id, *at),
                    credential_sha256,
                )
            }
            E::AgentTokenRotated {
                server_id,
                site_id,
                token_id,
                previous_token_id,
                credential_sha256,
                at,
            } => {
                revoke(w, *previous_token_id, *at, Some(*token_id))?;
                let mut row = agent_row(e, *token_id, *server_id, *site_id, *at);
                row.rotated_from = Some(*previous_token_id);
                w.put_value(agent_key(*server_id), token_id)?;
                add(w, &row, credential_sha256)
            }
            E::ServerDisconnected { server_id, at, .. } => {
                if let Some(current) = w.get_value::<Uuid>(&agent_key(*server_id))? {
                    revoke(w, current, *at, None)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Which credentials `tokens` lists; every given criterion must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenFilter {
    pub role: Option<Role>,
    /// Credentials that act on this site: scoped to it, or to all sites.
    pub site_id: Option<Uuid>,
    /// The AGENT credentials of this server.
    pub server_id: Option<Uuid>,
    /// A part of the principal's name, case-insensitive.
    pub name: Option<String>,
    pub revoked: Option<bool>,
    /// Expired at the `now` of the query.
    pub expired: Option<bool>,
}

impl TokenFilter {
    /// Whether `row` matches at `now`.
    pub fn matches(&self, row: &TokenRow, now: Timestamp) -> bool {
        self.role.is_none_or(|role| row.role == role)
            && self
                .site_id
                .is_none_or(|site| row.site_ids.is_empty() || row.site_ids.contains(&site))
            && self
                .server_id
                .is_none_or(|server| row.server_id == Some(server))
            && self
                .name
                .as_deref()
                .is_none_or(|name| norm(&row.name).contains(&norm(name)))
            && self
                .revoked
                .is_none_or(|revoked| row.revoked_at.is_some() == revoked)
            && self
                .expired
                .is_none_or(|expired| row.expired(now) == expired)
    }
}

/// Queries over credentials.
#[derive(Clone, Debug)]
pub struct Tokens {
    tree: TreeRef,
}

impl Tokens {
    pub fn new(tree: TreeRef) -> Self {
        Tokens { tree }
    }

    /// The unrevoked credential the secret whose hex SHA-256 is `sha256`
    /// authenticates, if any (expired or not: the caller judges expiry).
    /// (The caller hashes the presented secret; a lookup by hash leaks
    /// nothing through timing about other hashes.)
    pub fn authenticate(&self, sha256: &str) -> Result<Option<TokenRow>> {
        match get::<CredentialRef>(&self.tree, &hash_key(sha256))? {
            Some(CredentialRef::Token(id)) => {
                Ok(self.token(id)?.filter(|t| t.revoked_at.is_none()))
            }
            None => Ok(None),
        }
    }

    pub fn token(&self, id: Uuid) -> Result<Option<TokenRow>> {
        get(&self.tree, &token_key(id))
    }

    /// Every credential, revoked ones included, in id order (ids are
    /// time-ordered: issue order).
    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        values(&self.tree, b"t/")
    }

    /// The credentials `filter` matches at `now`, in id order.
    pub fn list(&self, filter: &TokenFilter, now: Timestamp) -> Result<Vec<TokenRow>> {
        Ok(self
            .tokens()?
            .into_iter()
            .filter(|row| filter.matches(row, now))
            .collect())
    }

    /// The server's current agent credential id, if it has one.
    pub fn agent_token_id(&self, server_id: Uuid) -> Result<Option<Uuid>> {
        get(&self.tree, &agent_key(server_id))
    }

    /// Whether an ADMIN token that authenticates at `now` exists (neither
    /// revoked nor expired; first-start bootstrap).
    pub fn has_admin(&self, now: Timestamp) -> Result<bool> {
        Ok(self
            .tokens()?
            .iter()
            .any(|t| t.role == Role::Admin && t.revoked_at.is_none() && !t.expired(now)))
    }
}
