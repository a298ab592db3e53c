//! The yard's HTTP server.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests can drive
//! it in-process or on an ephemeral port; [`serve`] runs it on a listener
//! until a shutdown future resolves. This crate is the only one that knows
//! HTTP: status codes, headers, SSE framing, and the OpenAPI document, which
//! is generated from the handlers' annotations and so cannot drift from the
//! routes.

mod agents;
mod aio;
mod api;
mod auth;
mod config;
mod error;
mod extract;
mod forge;
mod health;
mod hook;
mod host;
mod mcp;
mod questions;
mod session;
mod stack_access;
mod stack_list;
mod status;
mod tokens;
mod web;
mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::get;
use axum::serve::{Listener, ListenerExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::{router::OpenApiRouter, routes};
use yard_api::ErrorCode;
use yard_services::{
    Access, Deployer, EventBus, Forge, ForgeWebhooks, Gatekeeper, Orchestrator, PlatformStatus,
    Questions, Settings,
};

pub use error::AppError;
pub use extract::{MAX_BODY_BYTES, MAX_HOOK_BODY_BYTES, MAX_WEBHOOK_BODY_BYTES};

/// The services the server puts on the wire.
#[derive(Debug, Clone)]
pub struct Services {
    pub access: Access,
    pub deployer: Deployer,
    pub orchestrator: Orchestrator,
    pub gatekeeper: Gatekeeper,
    pub questions: Questions,
    /// The yard's settings (`/api/config`).
    pub config: Settings,
    /// The forge's webhook (`/webhook/gitea`).
    pub webhooks: ForgeWebhooks,
    /// The forge's set-up (`/api/forge/init`).
    pub forge: Forge,
    pub bus: EventBus,
    /// Under `yard aio`, the container's services; `None` otherwise.
    pub platform: Option<Arc<dyn PlatformStatus>>,
}

/// How the HTTP side is guarded beyond tokens.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Browser origins that may call `/mcp` (a foreign one gets 403).
    pub mcp_allowed_origins: Vec<String>,
    /// `Host` values `/mcp` accepts on TCP, against DNS rebinding.
    pub mcp_allowed_hosts: Vec<String>,
    /// Stack addresses answer only their owner (or an admin), by token or
    /// by a session handed over from the portal.
    pub protect_stacks: bool,
    /// Where people reach the portal, e.g. `http://localhost:3000`; the
    /// pages of protected stacks link back to it.
    pub portal_url: String,
}

/// What every handler can reach; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub access: Access,
    pub deployer: Deployer,
    pub orchestrator: Orchestrator,
    pub gatekeeper: Gatekeeper,
    pub questions: Questions,
    pub config: Settings,
    pub webhooks: ForgeWebhooks,
    pub forge: Forge,
    pub bus: EventBus,
    pub platform: Option<Arc<dyn PlatformStatus>>,
    pub settings: HttpSettings,
    /// Cancelled when the server stops, which ends every live stream.
    pub shutdown: CancellationToken,
    proxy: host::ProxyClient,
    pub(crate) stack_list: Arc<stack_list::StackListJson>,
}

impl AppState {
    pub fn new(services: Services, settings: HttpSettings, shutdown: CancellationToken) -> Self {
        Self {
            access: services.access,
            deployer: services.deployer,
            orchestrator: services.orchestrator,
            gatekeeper: services.gatekeeper,
            questions: services.questions,
            config: services.config,
            webhooks: services.webhooks,
            forge: services.forge,
            bus: services.bus,
            platform: services.platform,
            settings,
            shutdown,
            proxy: host::proxy_client(),
            stack_list: Arc::default(),
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
        (name = "agents", description = "Agents in containers: spawn, follow, review, merge"),
        (name = "hooks", description = "Hook decisions for agents, with an agent's credential"),
        (name = "session", description = "The web page's sign-in with a token, as an HttpOnly session cookie; changes made with the cookie need the X-CSRF-Token header"),
        (name = "tokens", description = "Tokens for people, made and revoked by an admin"),
        (name = "questions", description = "Questions agents ask people, and their answers"),
        (name = "health", description = "Liveness, without a token"),
        (name = "aio", description = "The all-in-one container's services"),
        (name = "config", description = "The yard's settings, set by an admin; secrets are stored encrypted and listed only as set or unset"),
        (name = "forge", description = "The forge: its set-up, run again by an admin, and its webhook, signed with the shared secret instead of a token"),
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
    routers().doc
}

/// Answers every failure to route in the API's error shape.
fn with_fallbacks(router: Router<AppState>) -> Router<AppState> {
    router
        .fallback(|| async { AppError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            AppError::client(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The routes, grouped by who may call them, and their document.
struct Routes {
    public: Router<AppState>,
    /// For people: a user token.
    users: Router<AppState>,
    /// For agents: an agent's credential.
    agents: Router<AppState>,
    /// For the forge: no token, a signature over the body. On TCP only.
    forge: Router<AppState>,
    doc: utoipa::openapi::OpenApi,
}

fn routers() -> Routes {
    let (users, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::check_name))
        .routes(routes!(api::deploy))
        .routes(routes!(api::list_deployments))
        .routes(routes!(api::get_deployment))
        .routes(routes!(api::list_stacks))
        .routes(routes!(api::destroy_stack))
        .routes(routes!(api::restart_stack))
        .routes(routes!(api::update_stack))
        .routes(routes!(stack_access::open))
        .routes(routes!(status::watch))
        .routes(routes!(status::watch_stacks))
        .routes(routes!(agents::spawn, agents::list))
        .routes(routes!(agents::prune))
        .routes(routes!(agents::get))
        .routes(routes!(agents::stop))
        .routes(routes!(agents::logs))
        .routes(routes!(agents::attach))
        .routes(routes!(agents::diff))
        .routes(routes!(agents::merge))
        .routes(routes!(agents::audit))
        .routes(routes!(agents::policy))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(questions::list))
        .routes(routes!(questions::answer))
        .routes(routes!(questions::live))
        .routes(routes!(aio::status))
        .routes(routes!(config::list))
        .routes(routes!(config::set, config::unset))
        .routes(routes!(forge::init))
        .split_for_parts();
    let (public, public_doc) = OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(
            session::sign_in,
            session::current,
            session::sign_out
        ))
        .split_for_parts();
    let (agents, agents_doc) = OpenApiRouter::new()
        .routes(routes!(hook::hook))
        .routes(routes!(hook::wait))
        .split_for_parts();
    let agents = agents.layer(DefaultBodyLimit::max(MAX_HOOK_BODY_BYTES));
    let (forge, forge_doc) = OpenApiRouter::new()
        .routes(routes!(webhook::gitea))
        .split_for_parts();
    let forge = forge.layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY_BYTES));
    doc.paths.paths.extend(public_doc.paths.paths);
    doc.paths.paths.extend(agents_doc.paths.paths);
    doc.paths.paths.extend(forge_doc.paths.paths);
    Routes {
        public,
        users,
        agents,
        forge,
        doc,
    }
}

/// The whole HTTP application, for the TCP listener.
pub fn app(state: AppState) -> Router {
    let Routes {
        public,
        users,
        agents,
        forge,
        doc,
    } = routers();
    let doc = Arc::new(doc);
    let users = users
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
    let agents = agents.route_layer(middleware::from_fn_with_state(
        state.clone(),
        hook::require_agent,
    ));
    let mcp = mcp::router(&state, Some(state.settings.mcp_allowed_hosts.clone()));
    let routes = with_fallbacks(
        public
            .merge(users)
            .merge(agents)
            .merge(forge)
            .merge(mcp)
            .merge(web::router()),
    )
    .with_state(state.clone());
    // The host router wraps everything, so a stack's host never reaches
    // the yard's own routes.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn_with_state(state, host::route_by_host))
        .layer(TraceLayer::new_for_http())
}

/// The application for the control socket: only what agents need (hooks
/// and MCP). The socket is reachable from every agent container, so nothing
/// else for people (and no stack routing) is served on it.
pub fn control_app(state: AppState) -> Router {
    let Routes { public, agents, .. } = routers();
    let agents = agents.route_layer(middleware::from_fn_with_state(
        state.clone(),
        hook::require_agent,
    ));
    // No browser reaches a Unix socket: no Host check there.
    let mcp = mcp::router(&state, None);
    with_fallbacks(public.merge(agents).merge(mcp))
        .with_state(state)
        .layer(TraceLayer::new_for_http())
}

/// How long a client may take to send a request's headers, and how long
/// an idle connection stays open, unless configured otherwise.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A client must send a whole request head within this after it
    /// connects or after its previous response; otherwise the connection is
    /// closed. Slow or half-open clients cannot hold connections forever.
    pub header_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: HEADER_TIMEOUT,
        }
    }
}

/// [`serve`] on TCP, with `TCP_NODELAY` on every connection: responses go
/// out as headers and then body chunks, and without it Nagle's algorithm
/// holds a small chunk back until the client's delayed ACK (40 ms).
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    serve(listener, app, limits, shutdown).await
}

/// Serves `app` on `listener` (HTTP/1.1, with upgrades) until `shutdown`
/// resolves; then stops accepting, lets open requests finish and closes
/// idle connections. Live streams end when [`AppState::shutdown`] is
/// cancelled.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    let connections = TaskTracker::new();
    let stopping = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let stopping = stopping.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                app.clone().oneshot(request.map(Body::new))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    stopping.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}
