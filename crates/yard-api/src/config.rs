//! The yard's settings on the wire: listed (a secret only as set or
//! unset), set and unset by an admin.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigEntryView {
    /// e.g. `forge.url`, `forge.bot_token`.
    pub key: String,
    /// A secret is stored encrypted and its value is never shown.
    pub secret: bool,
    pub set: bool,
    /// The value, for a setting that is set and not secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When it was last set, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `GET /api/config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConfigList {
    /// Every setting the yard knows, set or not.
    pub settings: Vec<ConfigEntryView>,
}

/// `PUT /api/config/{key}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetConfigRequest {
    /// Taken as it is: not trimmed.
    pub value: String,
}
