//! The DevTools relay: Chromium's DevTools endpoint behind a token.
//!
//! The DevTools protocol is full control of the browser (its pages, its
//! cookies, its files), so Chromium listens on `127.0.0.1:9222` only and this
//! relay exposes it, for example on `0.0.0.0:9223`, to whoever holds the
//! token. The same relay also stands in front of websockify/noVNC, a plain
//! HTTP and WebSocket web app, so the remote screen is behind the same token.
//!
//! What it does to each request:
//!
//! - **Access.** The token is accepted as `Authorization: Bearer <token>`,
//!   as a `?token=<token>` query parameter, or as the `yard_relay` cookie the
//!   relay sets when `?token=` was used (so a browser that opened
//!   `/vnc.html?token=…` loads the page's assets and opens its WebSocket
//!   without the token in every URL). Anything else gets `401`, upgrades
//!   included. The token never reaches the upstream.
//! - **HTTP** is proxied over a keep-alive pool, with `Host` set to what
//!   Chromium accepts (an IP address or `localhost`) and `Origin` dropped.
//! - **`/json` answers** (`/json/version`, `/json/list`, `/json/new`) are
//!   read whole, checked to be JSON and their WebSocket URLs rewritten to
//!   point back through the relay, at the address the client used and with
//!   the token in their query, so that `connectOverCDP`-style clients work
//!   unchanged.
//! - **WebSocket upgrades** are forwarded; once the upstream agrees, bytes
//!   are spliced both ways as they come, without re-framing and without an
//!   idle timeout.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use yard_relay::{Access, RelayConfig, relay_token};
//!
//! let token = relay_token(std::env::var("YARD_RELAY_TOKEN").ok(), "/var/lib/yard".as_ref())?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:9223").await?;
//! let config = RelayConfig {
//!     upstream: "127.0.0.1:9222".to_owned(),
//!     access: Access::Token(token),
//! };
//! yard_relay::run(listener, config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

mod access;
mod forward;
mod json;
mod proxy;
mod server;
mod token;
mod tunnel;

use std::net::SocketAddr;

pub use access::{Access, COOKIE_NAME, check_open_access};
pub use server::run;
pub use token::{TOKEN_FILE, relay_token};

/// What one relay serves: where it forwards to and who may use it.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The upstream's `host:port`, such as `127.0.0.1:9222` (Chromium's
    /// DevTools) or `127.0.0.1:6080` (websockify serving noVNC).
    pub upstream: String,
    /// Who may use the relay.
    pub access: Access,
}

/// Why a relay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The upstream is not a `host:port` the relay can connect to.
    #[error("the relay's upstream {0:?} is not host:port; give it as, for example, 127.0.0.1:9222")]
    InvalidUpstream(String),
    /// Open access on an address others can reach.
    #[error(
        "the relay would listen on {listen} with open access, and anyone who reaches that \
         address would control the browser; give it a token (YARD_RELAY_TOKEN, or the \
         relay-token file in the data directory) or listen on a loopback address such as \
         127.0.0.1"
    )]
    OpenNotOnLoopback {
        /// The address the relay was asked to listen on.
        listen: SocketAddr,
    },
    /// A token that is empty would let anyone in with `?token=`.
    #[error(
        "the relay token is empty; set YARD_RELAY_TOKEN to a secret, or unset it to use the \
         relay-token file in the data directory"
    )]
    EmptyToken,
    /// The listener cannot say where it listens.
    #[error("cannot read the relay listener's address: {0}")]
    Listener(#[source] std::io::Error),
}
