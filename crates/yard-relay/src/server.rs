//! Accepting connections and serving them until shutdown, in the style of
//! mini-redis's `run(listener, shutdown)`: the caller binds the listener
//! (so tests take an ephemeral port) and says when to stop.
//!
//! Client connections are HTTP/1.1 with upgrades, `TCP_NODELAY`, and a
//! deadline for request heads so that a client that opens a connection and
//! never finishes a request does not hold it forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::access::check_open_access;
use crate::proxy::Relay;
use crate::{Access, RelayConfig, RelayError};

/// How long a client has to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long requests in flight may take to finish once shutdown begins.
const GRACE: Duration = Duration::from_secs(5);

/// Serves the relay on `listener` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish (for a few seconds at most)
/// and cuts open WebSocket tunnels.
///
/// Refuses to start when `config.upstream` is not `host:port`, when the
/// token is empty, or when access is open and `listener` is not on a
/// loopback address (see [`crate::check_open_access`]).
pub async fn run(
    listener: TcpListener,
    config: RelayConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let listen = listener.local_addr().map_err(RelayError::Listener)?;
    check_open_access(listen, &config.access)?;
    let stopping = CancellationToken::new();
    let relay = Arc::new(Relay::new(&config, stopping.clone())?);
    let access = match config.access {
        Access::Token(_) => "token",
        Access::Open => "open",
    };
    tracing::info!(%listen, upstream = %relay.upstream.authority, access, "relay listening");

    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::trace!(%peer, "connection");
                    connections.spawn(serve_connection(stream, Arc::clone(&relay)));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some
                    // to close rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(%listen, "relay stopping");
    stopping.cancel();
    let drained = tokio::time::timeout(GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(left = connections.len(), "cutting connections still open");
    }
    connections.shutdown().await;
    Ok(())
}

/// Serves one client connection; on shutdown it finishes the request in
/// flight and closes.
async fn serve_connection(stream: TcpStream, relay: Arc<Relay>) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let stopping = relay.stopping.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let relay = Arc::clone(&relay);
        async move { relay.handle(request).await }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
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
        tracing::debug!(error = %e, "client connection ended");
    }
}
