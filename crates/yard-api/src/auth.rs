//! Tokens and browser sessions on the wire.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenRoleView {
    /// Everything, including managing tokens and every stack.
    Admin,
    /// Deploy stacks and manage one's own; spawn and follow agents.
    User,
}

/// One token, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: String,
    /// Whose token it is, for people; names are unique among active tokens
    /// whatever their case.
    pub name: String,
    pub role: TokenRoleView,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// `GET /api/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// The active tokens, oldest first.
    pub tokens: Vec<TokenView>,
}

/// `POST /api/tokens` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    /// Whose token it is: 1 to 64 letters, digits, '.', '_', '-' or '@'.
    pub name: String,
    /// `user` unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<TokenRoleView>,
    /// The id or name of a revoked token whose stacks and agents the new
    /// token takes over (a reissue). Without it, the new token owns nothing
    /// it did not make, even under a name some old token had.
    #[serde(default, rename = "takesOver", skip_serializing_if = "Option::is_none")]
    pub takes_over: Option<String>,
}

/// `DELETE /api/tokens/{token}`: the token, and the agents stopped with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedToken {
    #[serde(flatten)]
    pub token: TokenView,
    /// The ids of the token's agents that were stopped.
    #[serde(default)]
    pub stopped_agents: Vec<String>,
}

/// `201` answer to `POST /api/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: TokenView,
    /// The token itself, for `Authorization: Bearer` or the web page's
    /// sign-in. Not stored by the yard; keep it safe.
    pub secret: String,
}

/// `POST /api/session` body: a token, as a person pastes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignInRequest {
    pub token: String,
}

/// `POST /api/session` and `GET /api/session`: who is signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// The token's name.
    pub name: String,
    pub role: TokenRoleView,
    /// Send this as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE
    /// made with the session cookie.
    pub csrf_token: String,
    pub expires_at: String,
    /// Whether stack addresses need their owner's session; when they do,
    /// open a stack through `/api/stacks/{name}/open`.
    pub protect_stacks: bool,
}
