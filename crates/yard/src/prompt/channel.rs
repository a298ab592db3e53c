//! The question channel: the WebSocket at `/api/questions/ws` that offers
//! a person the questions their agents ask, and takes their claims and
//! answers. Typed here, so the rest of `yard prompt` deals in
//! [`QuestionServerMessage`] and [`QuestionClientMessage`], never in frames.

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yard_api::{ApiError, QuestionClientMessage, QuestionServerMessage};
use yard_client::ClientError;

use crate::cli::ClientArgs;
use crate::commands::{explain, token};

/// An open question channel.
#[derive(Debug)]
pub(crate) struct QuestionChannel {
    socket: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl QuestionChannel {
    /// Connects to the daemon the arguments point at, with their token.
    pub(crate) async fn open(args: &ClientArgs) -> anyhow::Result<Self> {
        let url = websocket_url(&args.url)?;
        let mut request = url
            .as_str()
            .into_client_request()
            .with_context(|| format!("{:?} is not a usable yard URL", args.url))?;
        if let Some(token) = token(args)? {
            let value = format!("Bearer {token}")
                .parse()
                .context("the token has characters a header cannot carry; check --token")?;
            request.headers_mut().insert("authorization", value);
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Self { socket }),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.body().clone().unwrap_or_default();
                match serde_json::from_slice::<ApiError>(&body) {
                    Ok(error) => Err(explain(ClientError::Api { status, error })),
                    Err(_) => bail!(
                        "the yard at {} refused the question channel ({status}); is it a yard, and as new as this `yard`?",
                        args.url
                    ),
                }
            }
            Err(e) => bail!(
                "cannot reach the yard at {}: {e}; is `yard serve` running there?",
                args.url
            ),
        }
    }

    pub(crate) async fn send(&mut self, message: &QuestionClientMessage) -> anyhow::Result<()> {
        let text = serde_json::to_string(message)?;
        self.socket
            .send(Message::text(text))
            .await
            .context("cannot send to the yard: the question channel broke")
    }

    /// The next message from the yard. Cancel-safe (only the socket is
    /// awaited), so it can race key presses. An error says why the
    /// channel ended.
    pub(crate) async fn next(&mut self) -> anyhow::Result<QuestionServerMessage> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).with_context(|| {
                        format!(
                            "the yard sent a message this `yard` does not understand ({text}); \
                             use a `yard` as new as the daemon"
                        )
                    });
                }
                Some(Ok(Message::Close(frame))) => bail!("{}", closed(frame.as_ref())),
                // Pings are answered by the socket itself.
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!(
                    "the question channel to the yard broke: {e}; is `yard serve` still running?"
                ),
                None => bail!("the yard closed the question channel"),
            }
        }
    }

    /// Says goodbye; the yard releases whatever this client still showed.
    pub(crate) async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// Why the yard closed the channel, in words.
fn closed(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(frame) if !frame.reason.is_empty() => format!(
            "the yard closed the question channel: {} ({})",
            frame.reason, frame.code
        ),
        Some(frame) => format!(
            "the yard closed the question channel ({}); it may be shutting down",
            frame.code
        ),
        None => "the yard closed the question channel; it may be shutting down".to_owned(),
    }
}

/// `ws://.../api/questions/ws` for a yard at `http://...` (`wss` for
/// `https`).
fn websocket_url(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let socket_base = if let Some(host_and_path) = base.strip_prefix("https://") {
        format!("wss://{host_and_path}")
    } else if let Some(host_and_path) = base.strip_prefix("http://") {
        format!("ws://{host_and_path}")
    } else {
        bail!("{base:?} is not a usable yard URL: use an http:// or https:// URL");
    };
    Ok(format!("{socket_base}/api/questions/ws"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_is_at_the_yards_address_with_a_websocket_scheme() {
        assert_eq!(
            websocket_url("http://127.0.0.1:3000/").unwrap(),
            "ws://127.0.0.1:3000/api/questions/ws"
        );
        assert_eq!(
            websocket_url("https://yard.example.com/base").unwrap(),
            "wss://yard.example.com/base/api/questions/ws"
        );
        assert!(websocket_url("ftp://x").is_err());
    }
}
