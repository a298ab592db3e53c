//! Who may come in: the one service the server asks about tokens and
//! sessions. It is the boundary in front of the store's credential tables,
//! so the HTTP and MCP layers never hold a store handle.

use yard_core::{SessionRecord, StackName, TokenRecord};
use yard_store::{Store, StoreError};

use crate::auth::{self, IssuedToken, NewToken, TokenError};
use crate::sessions::{self, NewSession, SessionScope};

/// Tokens and sessions; cheap to clone.
#[derive(Debug, Clone)]
pub struct Access {
    store: Store,
}

impl Access {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The active token a caller presented, if it is one.
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenRecord>, StoreError> {
        auth::authenticate(&self.store, token).await
    }

    /// Every active token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.store.active_tokens().await
    }

    /// Makes a token; its secret is shown once and only its hash is kept.
    pub async fn create_token(&self, request: &NewToken) -> Result<IssuedToken, TokenError> {
        auth::create_token(&self.store, request).await
    }

    /// Revokes the active token whose id or name is `key`.
    pub async fn revoke_token(&self, key: &str) -> Result<TokenRecord, TokenError> {
        auth::revoke_token(&self.store, key).await
    }

    /// Trades an API token for a portal session.
    pub async fn sign_in(&self, token: &str) -> Result<Option<NewSession>, StoreError> {
        sessions::sign_in(&self.store, token).await
    }

    /// The live session `secret` of `scope`, with its token.
    pub async fn session(
        &self,
        secret: &str,
        scope: &SessionScope,
    ) -> Result<Option<(SessionRecord, TokenRecord)>, StoreError> {
        sessions::session(&self.store, secret, scope).await
    }

    /// Ends the session `secret`; returns whether there was one.
    pub async fn sign_out(&self, secret: &str) -> Result<bool, StoreError> {
        sessions::sign_out(&self.store, secret).await
    }

    /// A one-time ticket that hands `token`'s holder over to `stack`.
    pub async fn issue_ticket(
        &self,
        token: TokenRecord,
        stack: &StackName,
    ) -> Result<String, StoreError> {
        sessions::issue_ticket(&self.store, token, stack).await
    }

    /// Trades a ticket for a session on `stack`'s address.
    pub async fn redeem_ticket(
        &self,
        ticket: &str,
        stack: &StackName,
    ) -> Result<Option<NewSession>, StoreError> {
        sessions::redeem_ticket(&self.store, ticket, stack).await
    }
}
