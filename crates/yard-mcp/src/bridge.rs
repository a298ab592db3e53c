//! `yard mcp`: a stdio MCP server that is a bridge to the daemon's `/mcp`.
//!
//! Every message read on stdin goes to the daemon over streamable HTTP, and
//! every message from the daemon is written to stdout, unchanged. Protocol
//! negotiation, progress notifications and cancellation all pass through,
//! so a stdio client sees exactly the daemon's tools.

use rmcp::service::{RoleClient, RoleServer};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{IntoTransport, StreamableHttpClientTransport, Transport};

/// Where the daemon's `/mcp` is.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// Over TCP, e.g. `http://127.0.0.1:3000/mcp`.
    Url(String),
    /// Over the control socket (from inside an agent).
    Socket(String),
}

/// Why the bridge stopped.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("the yard's /mcp failed: {0}")]
    Upstream(String),
    #[error("stdout failed: {0}")]
    Downstream(String),
}

/// Forwards between stdin/stdout and `upstream` until either side ends.
pub async fn run(upstream: Upstream, token: Option<String>) -> Result<(), BridgeError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(match &upstream {
        Upstream::Url(url) => url.clone(),
        Upstream::Socket(_) => "http://yard/mcp".to_owned(),
    });
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    match upstream {
        Upstream::Url(_) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder()
                .build()
                .map_err(|e| BridgeError::Client(e.to_string()))?;
            pump(StreamableHttpClientTransport::with_client(client, config)).await
        }
        Upstream::Socket(path) => {
            pump(StreamableHttpClientTransport::from_unix_socket_with_config(
                &path, config,
            ))
            .await
        }
    }
}

async fn pump<T>(mut upstream: T) -> Result<(), BridgeError>
where
    T: Transport<RoleClient>,
{
    let mut downstream =
        IntoTransport::<RoleServer, _, _>::into_transport(rmcp::transport::stdio());
    let result = loop {
        tokio::select! {
            from_client = downstream.receive() => match from_client {
                Some(message) => {
                    if let Err(e) = upstream.send(message).await {
                        break Err(BridgeError::Upstream(e.to_string()));
                    }
                }
                None => break Ok(()),
            },
            from_yard = upstream.receive() => match from_yard {
                Some(message) => {
                    if let Err(e) = downstream.send(message).await {
                        break Err(BridgeError::Downstream(e.to_string()));
                    }
                }
                None => break Err(BridgeError::Upstream("the yard closed the connection".to_owned())),
            },
        }
    };
    let _ = upstream.close().await;
    let _ = downstream.close().await;
    result
}
