//! `/api/config`: the yard's settings, listed, set and unset by an admin.
//! A secret's value is taken in and never given out: listings say only
//! whether it is set.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use yard_api::{ApiError, ConfigEntryView, ConfigList, ErrorCode, SetConfigRequest, rfc3339};
use yard_core::{ConfigKey, UnknownConfigKey};
use yard_services::ConfigState;

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;
use crate::extract::{JsonBody, PathArg};

fn view(state: ConfigState) -> ConfigEntryView {
    ConfigEntryView {
        key: state.key.to_string(),
        secret: state.secret,
        set: state.is_set(),
        updated_at: state.updated_at.map(rfc3339),
        value: state.value,
    }
}

fn parse_key(key: &str) -> Result<ConfigKey, AppError> {
    key.parse().map_err(|e: UnknownConfigKey| {
        AppError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            e.to_string(),
        )
    })
}

/// List the yard's settings (admin)
///
/// Every setting the yard knows, set or not; a secret's value is never
/// shown.
#[utoipa::path(
    get,
    path = "/api/config",
    tag = "config",
    responses(
        (status = 200, description = "Every setting, secrets only as set or unset", body = ConfigList),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<ConfigList>, AppError> {
    caller.require_admin()?;
    let settings = state.config.list().await?;
    Ok(Json(ConfigList {
        settings: settings.into_iter().map(view).collect(),
    }))
}

/// Set a setting (admin)
///
/// A secret (`forge.bot_token`, ...) is stored encrypted; the answer does
/// not repeat it.
#[utoipa::path(
    put,
    path = "/api/config/{key}",
    tag = "config",
    params(("key" = String, Path, description = "The setting, e.g. forge.url")),
    request_body = SetConfigRequest,
    responses(
        (status = 200, description = "Set", body = ConfigEntryView),
        (status = 400, description = "An unknown setting, or a value it cannot hold", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn set(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(key): PathArg<String>,
    JsonBody(request): JsonBody<SetConfigRequest>,
) -> Result<Json<ConfigEntryView>, AppError> {
    caller.require_admin()?;
    let key = parse_key(&key)?;
    let set = state.config.set(key, &request.value).await?;
    tracing::info!(%key, by = %caller.0.name, "setting changed");
    Ok(Json(view(set)))
}

/// Unset a setting (admin)
#[utoipa::path(
    delete,
    path = "/api/config/{key}",
    tag = "config",
    params(("key" = String, Path, description = "The setting, e.g. forge.url")),
    responses(
        (status = 200, description = "Unset (also when it was not set)", body = ConfigEntryView),
        (status = 400, description = "An unknown setting", body = ApiError),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn unset(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    PathArg(key): PathArg<String>,
) -> Result<Json<ConfigEntryView>, AppError> {
    caller.require_admin()?;
    let key = parse_key(&key)?;
    let unset = state.config.unset(key).await?;
    tracing::info!(%key, by = %caller.0.name, "setting cleared");
    Ok(Json(view(unset)))
}
