//! Who caused an event. Every stored event names one.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The author of an event: a person (through an issued token), a Session
/// Recording server's agent, or srs itself (scheduler, liveness monitor,
/// bootstrap).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// A principal holding an issued token. `token_id` identifies the
    /// credential used, `name` the principal it was issued to.
    Principal { token_id: Uuid, name: String },
    /// The agent of one Session Recording server.
    Agent { server_id: Uuid },
    /// srs itself; `component` says which part (e.g. `retention`, `liveness`).
    System { component: String },
}

impl Actor {
    pub fn system(component: impl Into<String>) -> Self {
        Actor::System {
            component: component.into(),
        }
    }

    /// A stable, human-readable label, used for filtering (`--actor`).
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Principal { name, .. } => write!(f, "principal:{name}"),
            Actor::Agent { server_id } => write!(f, "agent:{server_id}"),
            Actor::System { component } => write!(f, "system:{component}"),
        }
    }
}
