//! Browser sessions, made from a token.
//!
//! A person signs in to the web page by pasting a token; the page then holds
//! a session secret in an HttpOnly cookie instead of the token, so scripts
//! on the page never see the token. Every session carries a CSRF token the
//! page must send back on each state-changing request.
//!
//! A protected stack's address lives on another host, where the portal's
//! cookie is never sent. The portal hands a signed-in person over with a
//! one-time ticket (valid for a minute, taken once) that the stack's host
//! trades for a session of its own, scoped to that one stack.

use std::fmt;
use std::time::Duration;

use yard_core::{SessionRecord, TokenRecord};
use yard_core::{StackName, Timestamp};
use yard_store::{Store, StoreError};

use crate::auth::{authenticate, hash_token, random_secret};
use crate::now;

/// How long a portal or stack session lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a hand-over ticket is good for.
const TICKET_LIFETIME: Duration = Duration::from_secs(60);

/// What a session opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionScope {
    /// The web page and the API behind it.
    Portal,
    /// One protected stack's address.
    Stack(StackName),
    /// A one-time hand-over to one stack's address.
    Ticket(StackName),
}

impl fmt::Display for SessionScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Portal => f.write_str("portal"),
            Self::Stack(name) => write!(f, "stack:{name}"),
            Self::Ticket(name) => write!(f, "ticket:{name}"),
        }
    }
}

/// A session just made: the secret goes to the browser and is never stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub secret: String,
    pub session: SessionRecord,
    pub token: TokenRecord,
}

fn later(from: Timestamp, by: Duration) -> Timestamp {
    Timestamp(
        from.0
            .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX)),
    )
}

async fn open(
    store: &Store,
    token: TokenRecord,
    scope: &SessionScope,
    lifetime: Duration,
) -> Result<NewSession, StoreError> {
    let created_at = now();
    let secret = random_secret();
    let session = SessionRecord {
        token_id: token.id.clone(),
        scope: scope.to_string(),
        csrf_token: random_secret(),
        created_at,
        expires_at: later(created_at, lifetime),
    };
    store.insert_session(&session, &hash_token(&secret)).await?;
    Ok(NewSession {
        secret,
        session,
        token,
    })
}

/// Trades an API token for a portal session; `None` when the token is not
/// an active one.
pub async fn sign_in(store: &Store, token: &str) -> Result<Option<NewSession>, StoreError> {
    let Some(record) = authenticate(store, token.trim()).await? else {
        return Ok(None);
    };
    tracing::info!(token = %record.name, "signed in");
    open(store, record, &SessionScope::Portal, SESSION_LIFETIME)
        .await
        .map(Some)
}

/// The live session `secret` of `scope`, with its token.
pub async fn session(
    store: &Store,
    secret: &str,
    scope: &SessionScope,
) -> Result<Option<(SessionRecord, TokenRecord)>, StoreError> {
    store
        .live_session(&hash_token(secret), &scope.to_string(), now())
        .await
}

/// Ends the session `secret`; returns whether there was one.
pub async fn sign_out(store: &Store, secret: &str) -> Result<bool, StoreError> {
    store.delete_session(&hash_token(secret)).await
}

/// A one-time ticket that hands `token`'s holder over to `stack`'s address.
pub async fn issue_ticket(
    store: &Store,
    token: TokenRecord,
    stack: &StackName,
) -> Result<String, StoreError> {
    let ticket = open(
        store,
        token,
        &SessionScope::Ticket(stack.clone()),
        TICKET_LIFETIME,
    )
    .await?;
    Ok(ticket.secret)
}

/// Trades a ticket for `stack` for a session on that stack's address;
/// `None` when the ticket is unknown, used, expired, or for another stack.
pub async fn redeem_ticket(
    store: &Store,
    ticket: &str,
    stack: &StackName,
) -> Result<Option<NewSession>, StoreError> {
    let scope = SessionScope::Ticket(stack.clone()).to_string();
    let Some((_, token)) = store
        .take_session(&hash_token(ticket), &scope, now())
        .await?
    else {
        return Ok(None);
    };
    open(
        store,
        token,
        &SessionScope::Stack(stack.clone()),
        SESSION_LIFETIME,
    )
    .await
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;
    use crate::auth::ensure_admin_token;

    #[tokio::test]
    async fn a_token_becomes_a_session_and_a_ticket_a_stack_session() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let store = Store::open(&Store::sqlite_url(tmp.path())).await.unwrap();
        ensure_admin_token(&store, &dir).await.unwrap();
        let token = dir.read_admin_token().unwrap().unwrap();

        assert!(sign_in(&store, "yard_nope").await.unwrap().is_none());
        let signed_in = sign_in(&store, &format!(" {token}\n"))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(signed_in.secret, token);
        let (found, owner) = session(&store, &signed_in.secret, &SessionScope::Portal)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.csrf_token, signed_in.session.csrf_token);
        assert_eq!(owner.name, "admin");

        let alice = StackName::from_trusted("alice");
        let bob = StackName::from_trusted("bob");
        let ticket = issue_ticket(&store, owner, &alice).await.unwrap();
        assert!(
            redeem_ticket(&store, &ticket, &bob)
                .await
                .unwrap()
                .is_none(),
            "another stack"
        );
        let on_alice = redeem_ticket(&store, &ticket, &alice)
            .await
            .unwrap()
            .unwrap();
        assert!(
            redeem_ticket(&store, &ticket, &alice)
                .await
                .unwrap()
                .is_none(),
            "used once"
        );
        let stack_scope = SessionScope::Stack(alice);
        assert!(
            session(&store, &on_alice.secret, &stack_scope)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            session(&store, &on_alice.secret, &SessionScope::Portal)
                .await
                .unwrap()
                .is_none(),
            "a stack session does not open the portal"
        );

        assert!(sign_out(&store, &signed_in.secret).await.unwrap());
        assert!(
            session(&store, &signed_in.secret, &SessionScope::Portal)
                .await
                .unwrap()
                .is_none()
        );
    }
}
