//! Credentials, for authentication: issued tokens and server agent
//! credentials, found by the SHA-256 of their secret.
//!
//! | key | value |
//! |---|---|
//! | `t/` token id | [`TokenRow`] |
//! | `h/` secret SHA-256 (hex) | [`CredentialRef`] |
//! | `g/` server id | the agent credential's hash |

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{DomainEvent, Principal, Role};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{get, values, TreeRef};
use crate::codec::Key;
use crate::engine::{Projection, Writes};
use crate::error::Result;

/// An issued token (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: Uuid,
    /// The principal's name.
    pub name: String,
    pub role: Role,
    /// Empty: all sites.
    pub site_ids: BTreeSet<Uuid>,
    pub groups: Vec<String>,
    pub issued_at: Timestamp,
    pub issued_by: String,
    pub revoked_at: Option<Timestamp>,
}

impl TokenRow {
    /// The principal this token authenticates, unless revoked.
    pub fn principal(&self) -> Option<Principal> {
        if self.revoked_at.is_some() {
            return None;
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
    Token(Uuid),
    Agent {
        server_id: Uuid,
        site_id: Uuid,
        /// A disconnected server's credential no longer authenticates.
        revoked: bool,
    },
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

fn set_agent(w: &mut Writes, server_id: Uuid, site_id: Uuid, sha: &str) -> Result<()> {
    // A new credential replaces the server's previous one.
    if let Some(old) = w.get(&agent_key(server_id))? {
        w.remove(old)?;
    }
    let key = hash_key(sha);
    w.insert(agent_key(server_id), key.clone())?;
    w.put_value(
        key,
        &CredentialRef::Agent {
            server_id,
            site_id,
            revoked: false,
        },
    )
}

impl Projection<DomainEvent> for TokensProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, w: &mut Writes, e: &Envelope<DomainEvent>) -> Result<()> {
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
            } => {
                w.put_value(hash_key(secret_sha256), &CredentialRef::Token(*token_id))?;
                w.put_value(
                    token_key(*token_id),
                    &TokenRow {
                        id: *token_id,
                        name: name.clone(),
                        role: *role,
                        site_ids: site_ids.clone(),
                        groups: groups.clone(),
                        issued_at: *at,
                        issued_by: e.actor.label(),
                        revoked_at: None,
                    },
                )
            }
            E::TokenRevoked { token_id, at, .. } => {
                if let Some(mut row) = w.get_value::<TokenRow>(&token_key(*token_id))? {
                    row.revoked_at = Some(*at);
                    w.put_value(token_key(*token_id), &row)?;
                }
                Ok(())
            }
            E::ServerConnected {
                server_id,
                site_id,
                credential_sha256,
                ..
            }
            | E::ServerInstallRequested {
                server_id,
                site_id,
                credential_sha256,
                ..
            } => set_agent(w, *server_id, *site_id, credential_sha256),
            E::ServerDisconnected { server_id, .. } => {
                if let Some(key) = w.get(&agent_key(*server_id))? {
                    if let Some(CredentialRef::Agent {
                        server_id, site_id, ..
                    }) = w.get_value(&key)?
                    {
                        w.put_value(
                            key,
                            &CredentialRef::Agent {
                                server_id,
                                site_id,
                                revoked: true,
                            },
                        )?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Who a secret authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authenticated {
    /// An issued token's principal.
    Token(TokenRow),
    /// A server's agent.
    Agent(Principal),
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

    /// Who the secret whose hex SHA-256 is `sha256` authenticates; `None`
    /// when unknown or revoked. (The caller hashes the presented secret;
    /// a lookup by hash leaks nothing through timing about other hashes.)
    pub fn authenticate(&self, sha256: &str) -> Result<Option<Authenticated>> {
        match get::<CredentialRef>(&self.tree, &hash_key(sha256))? {
            Some(CredentialRef::Token(id)) => Ok(self
                .token(id)?
                .filter(|t| t.revoked_at.is_none())
                .map(Authenticated::Token)),
            Some(CredentialRef::Agent {
                server_id,
                site_id,
                revoked: false,
            }) => Ok(Some(Authenticated::Agent(Principal::agent(
                server_id, site_id,
            )))),
            Some(CredentialRef::Agent { revoked: true, .. }) | None => Ok(None),
        }
    }

    pub fn token(&self, id: Uuid) -> Result<Option<TokenRow>> {
        get(&self.tree, &token_key(id))
    }

    /// Every issued token, revoked ones included.
    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        values(&self.tree, b"t/")
    }

    /// Whether any unrevoked ADMIN token exists (first-start bootstrap).
    pub fn has_admin(&self) -> Result<bool> {
        Ok(self
            .tokens()?
            .iter()
            .any(|t| t.role == Role::Admin && t.revoked_at.is_none()))
    }
}
