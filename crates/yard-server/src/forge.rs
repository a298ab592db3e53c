//! `POST /api/forge/init`: the forge's set-up run again on demand, by an
//! admin (`yard forge init`). Every step finds what exists, so a run
//! makes nothing twice; the answer names secrets, never shows them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use yard_api::{ApiError, ErrorCode, ForgeInitReport};
use yard_services::{ForgeError, ForgeReport};

use crate::AppState;
use crate::auth::Principal;
use crate::error::AppError;

fn view(report: ForgeReport) -> ForgeInitReport {
    ForgeInitReport {
        forge_url: report.forge_url,
        version: report.version,
        admin_user: report.admin_user,
        bot_user: report.bot_user,
        org: report.org,
        webhook_url: report.webhook_url,
        webhook_id: report.webhook_id,
        generated: report.generated,
        stored: report.stored.iter().map(ToString::to_string).collect(),
    }
}

/// Set the forge up (admin)
///
/// The bot user and its token, the organisation with the bot among its
/// owners, and the system webhook to this yard, each found and updated if
/// it exists; the secrets are kept in the yard's settings. Safe to repeat.
#[utoipa::path(
    post,
    path = "/api/forge/init",
    tag = "forge",
    responses(
        (status = 200, description = "The forge is set up", body = ForgeInitReport),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 403, description = "Not an admin", body = ApiError),
        (status = 409, description = "No forge is configured", body = ApiError),
        (status = 502, description = "A step failed; the message names it. What was settled is kept for the next run", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn init(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<ForgeInitReport>, AppError> {
    caller.require_admin()?;
    tracing::info!(by = %caller.0.name, "setting the forge up on demand");
    let report = state.forge.init().await?;
    Ok(Json(view(report)))
}

impl From<ForgeError> for AppError {
    fn from(e: ForgeError) -> Self {
        let message = e.to_string();
        match e {
            ForgeError::NotConfigured => {
                Self::client(StatusCode::CONFLICT, ErrorCode::Unsupported, message)
            }
            // The messages name the step and what the forge said, cleaned
            // of every secret; they are the caller's to act on.
            ForgeError::NotReady { .. } | ForgeError::FirstAdmin(_) | ForgeError::Setup(_) => {
                Self::client(
                    StatusCode::BAD_GATEWAY,
                    ErrorCode::ForgeSetupFailed,
                    message,
                )
            }
            ForgeError::Settings(e) => e.into(),
            ForgeError::Marker { .. } => Self::internal(message),
        }
    }
}
