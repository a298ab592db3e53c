//! `GET /health`: is the daemon up, does its store answer, and under `yard
//! aio` are the container's services up? No token: probes and the
//! container's healthcheck (`yard health`) call it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use yard_api::{Health, SERVICE_NAME};

use crate::AppState;

/// Report liveness
///
/// 200 with `healthy` when the store answers and every supervised service
/// is up; 503 with `degraded` when a service of the all-in-one container is
/// not (its state is in `services`), or `unhealthy` when the store does not
/// answer.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The store does not answer, or a service is not up", body = Health),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (mut status, mut code, active) = match state.deployer.count_active().await {
        Ok(active) => ("healthy", StatusCode::OK, active),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the store does not answer");
            ("unhealthy", StatusCode::SERVICE_UNAVAILABLE, 0)
        }
    };
    let services = state.platform.as_ref().map(|platform| {
        let report = platform.report();
        if code == StatusCode::OK && report.degraded().next().is_some() {
            (status, code) = ("degraded", StatusCode::SERVICE_UNAVAILABLE);
        }
        report
            .services
            .into_iter()
            .map(|service| (service.name, service.state))
            .collect()
    });
    (
        code,
        Json(Health {
            status: status.to_owned(),
            timestamp: yard_api::rfc3339(yard_services::now()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            service: SERVICE_NAME.to_owned(),
            active_deployments: active,
            services,
        }),
    )
}
