//! Authentication: bearer tokens in, principals out.
//!
//! A token is `srs_` followed by 64 hex digits (32 random bytes from the OS).
//! srs never stores a secret: it keeps the SHA-256 of it (in `TokenIssued`
//! or `TokenRotated` for issued tokens, in `ServerConnected` /
//! `ServerInstallRequested` / `AgentTokenRotated` for a server's agent
//! credential) and looks presented secrets up by that hash. A token past
//! its expiry is refused with a message saying it expired, and when
//! ([`crate::state::Services::authenticate`]).
//!
//! Authorization is not decided here: resolvers ask
//! [`srs_domain::model::may`], the one deny-by-default decision function.

use axum::http::{header, HeaderMap};
use rand::RngCore;

use crate::error::ApiError;

/// The prefix of every secret srs hands out (so that secret scanners and
/// people recognise one).
pub const TOKEN_PREFIX: &str = "srs_";

/// The longest `Authorization` value accepted; anything longer is not a
/// token srs issued and is refused before hashing.
const MAX_TOKEN_LEN: usize = 512;

/// A fresh random secret.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The bearer token of a request: `None` without an `Authorization`
/// header; `UNAUTHENTICATED` for a header that is not `Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is not text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_LEN)
        .ok_or_else(|| {
            ApiError::unauthenticated("the Authorization header must be `Bearer <token>`")
        })?;
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_tokens_are_extracted() {
        assert_eq!(bearer_token(&headers("Bearer abc")).unwrap(), Some("abc"));
        assert_eq!(bearer_token(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn other_schemes_are_unauthenticated() {
        let error = bearer_token(&headers("Basic abc")).unwrap_err();
        assert_eq!(error.code, crate::error::Code::Unauthenticated);
        assert!(bearer_token(&headers("Bearer ")).is_err());
    }

    #[test]
    fn secrets_are_random_and_prefixed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
    }
}
