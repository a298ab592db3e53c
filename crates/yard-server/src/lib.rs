//! The yard's HTTP server.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests can drive
//! it in-process or on an ephemeral port; [`serve`] runs it on a listener
//! until a shutdown future resolves. This crate is the only one that knows
//! HTTP: status codes, headers, SSE framing, and the OpenAPI document, which
//! is generated from the handlers' annotations and so cannot drift from the
//! routes.

mod api;
mod auth;
mod error;
mod extract;
mod health;
mod host;
mod status;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::{router::OpenApiRouter, routes};
use yard_api::ErrorCode;
use yard_services::{Deployer, EventBus};

pub use error::AppError;
pub use extract::MAX_BODY_BYTES;

/// What every handler can reach; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub deployer: Deployer,
    pub bus: EventBus,
    /// Cancelled when the server stops, which ends every live stream.
    pub shutdown: CancellationToken,
    proxy: host::ProxyClient,
}

impl AppState {
    pub fn new(deployer: Deployer, bus: EventBus, shutdown: CancellationToken) -> Self {
        Self {
            deployer,
            bus,
            shutdown,
            proxy: host::proxy_client(),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "agentyard",
        description = "Deploy personal agent stacks and follow their progress. Every /api route needs 'Authorization: Bearer <token>'.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "stacks", description = "Names, deployment and removal of stacks"),
        (name = "deployments", description = "Deployment records and live progress"),
        (name = "health", description = "Liveness, without a token"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// The OpenAPI document of the API, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routers().2
}

/// The public and the token-protected routes, and their document.
fn routers() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (protected, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::check_name))
        .routes(routes!(api::deploy))
        .routes(routes!(api::list_deployments))
        .routes(routes!(api::get_deployment))
        .routes(routes!(api::list_stacks))
        .routes(routes!(api::destroy_stack))
        .routes(routes!(status::watch))
        .split_for_parts();
    let (public, public_doc) = OpenApiRouter::new()
        .routes(routes!(health::health))
        .split_for_parts();
    doc.paths.paths.extend(public_doc.paths.paths);
    (public, protected, doc)
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (public, protected, doc) = routers();
    let doc = Arc::new(doc);
    let protected = protected
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = Arc::clone(&doc);
                async move { axum::Json(doc) }
            }),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let routes = public
        .merge(protected)
        .fallback(|| async { AppError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            AppError::client(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone());
    // The host router wraps everything, so a stack's host never reaches
    // the yard's own routes.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn_with_state(state, host::route_by_host))
        .layer(TraceLayer::new_for_http())
}

/// Serves the app on `listener` until `shutdown` resolves; then stops
/// accepting, ends live event streams and waits for open requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop_streams = state.shutdown.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop_streams.cancel();
        })
        .await
}
