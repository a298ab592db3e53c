//! WebSocket tunnels: the upgrade is forwarded on a fresh connection to the
//! upstream and, once it answers 101, the two connections are spliced.
//!
//! After the switch the relay copies bytes as they come, both ways, without
//! reading WebSocket frames: DevTools messages pass exactly as sent, with
//! nothing to re-encode. A tunnel has no idle timeout (a DevTools session or
//! a VNC screen may be quiet for long stretches); it lives until either side
//! closes or the relay shuts down. Both sides are taken back down to their
//! TCP sockets, so the copy runs on plain sockets.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::forward::{requested_upgrade, strip_hop_by_hop};
use crate::proxy::{ANSWER_TIMEOUT, CONNECT_TIMEOUT, Relay, RelayBody, causes};

/// The copy buffer, each way: a screenshot is hundreds of kilobytes.
const BUFFER: usize = 64 * 1024;

/// Forwards an upgrade request; on 101 answers the client 101 and splices
/// the two connections in the background.
pub(crate) async fn open(relay: &Relay, mut request: Request<Incoming>) -> Response<RelayBody> {
    let protocol = requested_upgrade(request.headers()).cloned();
    let client_side = hyper::upgrade::on(&mut request);
    let (mut parts, _body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    relay.gate.strip(&mut parts);
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::ORIGIN);
    parts
        .headers
        .insert(header::HOST, relay.upstream.host.clone());
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(protocol) = protocol {
        parts.headers.insert(header::UPGRADE, protocol);
    }
    // On its own connection the request names the path only.
    if let Some(path_and_query) = parts.uri.path_and_query().cloned() {
        parts.uri = path_and_query.into();
    }
    let request = Request::from_parts(parts, Empty::<Bytes>::new());

    let authority = relay.upstream.authority.as_str();
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(upstream = authority, path, error = %e, "cannot connect to the upstream");
            return relay.unreachable(&format!("cannot connect: {e}"));
        }
        Err(_) => {
            tracing::warn!(
                upstream = authority,
                path,
                "the upstream did not accept in time"
            );
            return relay.unreachable(&format!(
                "no connection within {}s",
                CONNECT_TIMEOUT.as_secs()
            ));
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let (mut sender, connection) = match hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
        TokioIo::new(stream),
    )
    .await
    {
        Ok(handshake) => handshake,
        Err(e) => return relay.unreachable(&causes(&e)),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    let mut response = match tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(request))
        .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            let cause = causes(&e);
            tracing::warn!(upstream = authority, path, error = %cause, "the upstream did not answer an upgrade");
            return relay.unreachable(&cause);
        }
        Err(_) => {
            return relay.unreachable(&format!("no answer within {}s", ANSWER_TIMEOUT.as_secs()));
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        tracing::debug!(upstream = authority, path, status = %response.status(), "the upstream refused an upgrade");
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return Response::from_parts(parts, Either::Left(body));
    }

    let upstream_side = hyper::upgrade::on(&mut response);
    let protocol = response.headers().get(header::UPGRADE).cloned();
    let mut headers = response.headers().clone();
    strip_hop_by_hop(&mut headers);
    tokio::spawn(splice(
        client_side,
        upstream_side,
        relay.stopping.clone(),
        path,
    ));

    let mut answer = Response::new(Either::Right(Full::new(Bytes::new())));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *answer.headers_mut() = headers;
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(protocol) = protocol {
        answer.headers_mut().insert(header::UPGRADE, protocol);
    }
    answer
}

/// Waits for both sides to switch, then copies until one closes or the
/// relay stops.
async fn splice(client: OnUpgrade, upstream: OnUpgrade, stopping: CancellationToken, path: String) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(client), Ok(upstream)) => (client, upstream),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!(path, error = %e, "an upgrade did not complete");
            return;
        }
    };
    let copied = tokio::select! {
        copied = async {
            match (Side::of(client), Side::of(upstream)) {
                (Side::Tcp(a, a_early), Side::Tcp(b, b_early)) => pump(a, a_early, b, b_early).await,
                (Side::Tcp(a, a_early), Side::Other(b)) => pump(a, a_early, b, Bytes::new()).await,
                (Side::Other(a), Side::Tcp(b, b_early)) => pump(a, Bytes::new(), b, b_early).await,
                (Side::Other(a), Side::Other(b)) => pump(a, Bytes::new(), b, Bytes::new()).await,
            }
        } => copied,
        () = stopping.cancelled() => return,
    };
    match copied {
        Ok((sent, received)) => tracing::debug!(path, sent, received, "tunnel closed"),
        Err(e) => tracing::debug!(path, error = %e, "tunnel ended"),
    }
}

/// One side of a tunnel: its TCP socket with the bytes already read from
/// it, or (for a transport that is not TCP) the upgraded connection.
enum Side {
    Tcp(TcpStream, Bytes),
    Other(TokioIo<Upgraded>),
}

impl Side {
    fn of(upgraded: Upgraded) -> Self {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => Self::Tcp(parts.io.into_inner(), parts.read_buf),
            Err(upgraded) => Self::Other(TokioIo::new(upgraded)),
        }
    }
}

/// Passes on what each side sent right behind its handshake, then copies
/// both ways; the bytes sent from `client` to `upstream` and back.
async fn pump<A, B>(
    mut client: A,
    client_early: Bytes,
    mut upstream: B,
    upstream_early: Bytes,
) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    upstream.write_all(&client_early).await?;
    client.write_all(&upstream_early).await?;
    tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, BUFFER, BUFFER).await
}
