//! MCP for agentyard: the yard's tools for assistants and agents.
//!
//! The tools live in the daemon and are served over streamable HTTP at
//! `/mcp` ([`http_service`]), on TCP and on the control socket. `yard mcp`
//! is a stdio MCP server for assistants that start their servers as child
//! processes; it is only a bridge ([`bridge::run`]) that forwards every
//! message to the daemon's `/mcp`, so the tools are implemented once and
//! their state is never split between two processes.

pub mod bridge;
mod tools;

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use yard_services::{Deployer, Orchestrator, Questions};

pub use tools::YardTools;

/// Who may talk to `/mcp` over HTTP.
#[derive(Debug, Clone)]
pub struct HttpGuard {
    /// Browser origins allowed to call; a request with any other `Origin`
    /// gets 403. Requests without an `Origin` (not from a browser) pass.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted, against DNS rebinding; `None` accepts any
    /// (for the Unix socket, which no browser can reach).
    pub allowed_hosts: Option<Vec<String>>,
}

/// The streamable HTTP service for `/mcp`. Its sessions end when `stop` is
/// cancelled, so open streams never hold up a shutdown.
pub fn http_service(
    deployer: Deployer,
    orchestrator: Orchestrator,
    questions: Questions,
    guard: HttpGuard,
    stop: CancellationToken,
) -> StreamableHttpService<YardTools, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(stop.clone())
        .with_allowed_origins(guard.allowed_origins)
        .enforce_origin_validation();
    config = match guard.allowed_hosts {
        Some(hosts) => config.with_allowed_hosts(hosts),
        None => config.disable_allowed_hosts(),
    };
    StreamableHttpService::new(
        move || {
            Ok(YardTools::new(
                deployer.clone(),
                orchestrator.clone(),
                questions.clone(),
                stop.clone(),
            ))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
