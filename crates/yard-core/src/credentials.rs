//! The people's credentials, as the yard knows them: tokens (never their
//! secret, only what they stand for) and the sessions made from them.
//! Their secrets are hashed by the services and only hashes are stored.

use crate::{Owner, Role, Timestamp};

/// A token as the yard knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The owner identity of what it makes: its own id, or the id of the
    /// revoked token it took over from.
    pub owner_id: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl TokenRecord {
    /// The owner of what this token makes.
    pub fn owner(&self) -> Owner {
        Owner {
            id: self.owner_id.clone(),
            name: self.name.clone(),
        }
    }
}

/// A session as the yard knows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The token the session was made from.
    pub token_id: String,
    /// What the session opens: `portal`, `stack:NAME` or `ticket:NAME`.
    pub scope: String,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}
