//! `GET /api/aio`: the all-in-one container's services, for `yard aio
//! status` and the web page. Outside `yard aio` there are none, and the
//! route says so with 404 rather than an empty list that looks healthy.

use axum::Json;
use axum::extract::State;
use yard_api::{AioServiceView, AioStatus, ApiError, BrowserView};
use yard_services::{PlatformReport, PlatformService};

use crate::AppState;
use crate::error::AppError;

/// The all-in-one container's services
///
/// Each service `yard aio` supervises, the yard first, with its state,
/// pid, uptime, restarts and last exit; and where the browser is.
#[utoipa::path(
    get,
    path = "/api/aio",
    tag = "aio",
    responses(
        (status = 200, description = "The services", body = AioStatus),
        (status = 401, description = "Missing or invalid token", body = ApiError),
        (status = 404, description = "This yard does not run under `yard aio`", body = ApiError),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn status(State(state): State<AppState>) -> Result<Json<AioStatus>, AppError> {
    let platform = state.platform.as_ref().ok_or_else(|| {
        AppError::not_found("this yard does not run under `yard aio`: it supervises no services")
    })?;
    Ok(Json(view(platform.report())))
}

fn view(report: PlatformReport) -> AioStatus {
    AioStatus {
        services: report.services.into_iter().map(service_view).collect(),
        browser: BrowserView {
            mode: report.browser.mode,
            view_url: report.browser.view_url,
            cdp_url: report.browser.cdp_url,
        },
        agent_image: report.agent_image,
        forge: report.forge,
    }
}

fn service_view(service: PlatformService) -> AioServiceView {
    AioServiceView {
        name: service.name,
        state: service.state,
        pid: service.pid,
        uptime_seconds: service.uptime.map(|uptime| uptime.as_secs()),
        restarts: service.restarts,
        last_exit: service.last_exit,
        ready: service.ready,
        detail: service.detail,
    }
}
