//! The caller of one request, as resolvers see it.

use std::sync::Arc;

use async_graphql::Context;
use srs_domain::model::Principal;

use crate::error::{ApiError, ApiResult};
use crate::state::Services;

/// Per-request data: who is asking (`None`: no token was presented).
#[derive(Clone, Debug)]
pub struct RequestContext {
    principal: Option<Principal>,
}

impl RequestContext {
    pub fn new(principal: Option<Principal>) -> Self {
        RequestContext { principal }
    }

    /// The caller, or `UNAUTHENTICATED`.
    pub fn principal(&self) -> ApiResult<&Principal> {
        self.principal
            .as_ref()
            .ok_or_else(|| ApiError::unauthenticated("this operation needs a bearer token"))
    }
}

/// Shortcuts for resolvers.
pub(crate) trait ContextExt {
    fn services(&self) -> ApiResult<&Arc<Services>>;
    fn caller(&self) -> ApiResult<&Principal>;
}

impl ContextExt for Context<'_> {
    fn services(&self) -> ApiResult<&Arc<Services>> {
        self.data::<Arc<Services>>()
            .map_err(|e| ApiError::internal(format!("schema without services: {}", e.message)))
    }

    fn caller(&self) -> ApiResult<&Principal> {
        self.data::<RequestContext>()
            .map_err(|_| ApiError::unauthenticated("this operation needs a bearer token"))?
            .principal()
    }
}
