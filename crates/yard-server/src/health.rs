//! `GET /health`: is the daemon up, and does its store answer? No token.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use yard_api::{Health, SERVICE_NAME};

use crate::AppState;

/// Report liveness
///
/// 200 with `healthy` when the store answers, 503 with `unhealthy` when not.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The store does not answer", body = Health),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (status, code, active) = match state.deployer.count_active().await {
        Ok(active) => ("healthy", StatusCode::OK, active),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the store does not answer");
            ("unhealthy", StatusCode::SERVICE_UNAVAILABLE, 0)
        }
    };
    (
        code,
        Json(Health {
            status: status.to_owned(),
            timestamp: yard_api::rfc3339(yard_services::now()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            service: SERVICE_NAME.to_owned(),
            active_deployments: active,
        }),
    )
}
