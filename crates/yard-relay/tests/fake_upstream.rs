//! The relay in front of a fake upstream that records what reaches it:
//! what is taken off requests (the token, `Origin`, the client's `Host`),
//! what the `/json` rewriting answers for bad input, and how the relay
//! fails when the upstream is not there (quickly, with 502) or shuts down.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message as AxumMessage, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use common::{RunningRelay, TOKEN, bearer, request, request_with_body};
use futures::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite;
use yard_relay::{Access, RelayConfig, RelayError};

/// A request as the fake upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// What `/json/version` answers: content type and body.
    version: Arc<Mutex<(&'static str, String)>>,
}

impl Fake {
    async fn start() -> (Self, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Self::default();
        *fake.version.lock().unwrap() = (
            "application/json; charset=UTF-8",
            format!(
                r#"{{"Browser":"Fake/1","webSocketDebuggerUrl":"ws://{addr}/devtools/browser/B1"}}"#
            ),
        );
        let app = Router::new()
            .route("/json/version", get(version))
            .route("/json/list", get(huge_list))
            .route("/json/activate/{id}", get(|| async { "Target activated" }))
            .route("/ws", get(echo))
            .fallback(any(record))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream saw no request")
    }

    fn remember(&self, target: String, headers: HeaderMap, body: Bytes) {
        self.seen.lock().unwrap().push(Seen {
            target,
            headers,
            body,
        });
    }
}

async fn record(State(fake): State<Fake>, request: Request) -> &'static str {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    fake.remember(parts.uri.to_string(), parts.headers, body);
    "recorded"
}

async fn version(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    fake.remember("/json/version".to_owned(), headers, Bytes::new());
    let (content_type, body) = fake.version.lock().unwrap().clone();
    ([("content-type", content_type)], body).into_response()
}

/// A list larger than the relay reads.
async fn huge_list() -> Response {
    let item = r#"{"id":"x","url":"about:blank"},"#;
    let mut body = String::from("[");
    while body.len() < 5 * 1024 * 1024 {
        body.push_str(item);
    }
    body.push_str(r#"{"id":"y"}]"#);
    ([("content-type", "application/json")], body).into_response()
}

/// A WebSocket that echoes text, after recording its upgrade request.
async fn echo(State(fake): State<Fake>, request: Request) -> Response {
    let (mut parts, _) = request.into_parts();
    fake.remember(parts.uri.to_string(), parts.headers.clone(), Bytes::new());
    let upgrade =
        match <WebSocketUpgrade as axum::extract::FromRequestParts<()>>::from_request_parts(
            &mut parts,
            &(),
        )
        .await
        {
            Ok(upgrade) => upgrade,
            Err(refusal) => return refusal.into_response(),
        };
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let AxumMessage::Text(text) = message
                && socket.send(AxumMessage::Text(text)).await.is_err()
            {
                break;
            }
        }
    })
}

fn cookie() -> String {
    format!(
        "yard_relay={}",
        hex::encode(Sha256::digest(TOKEN.as_bytes()))
    )
}

#[tokio::test]
async fn the_token_origin_and_client_host_never_reach_the_upstream() {
    let (fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let (name, value) = bearer();
    let cookie = format!("theme=dark; {}", cookie());
    let answer = request(
        relay.addr,
        "GET",
        &format!("/app/page?a=1&token={TOKEN}&b=2"),
        &[
            (name, &value),
            ("origin", "http://attacker.example"),
            ("cookie", &cookie),
            ("host", "relay.example:9223"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "recorded");
    let seen = fake.last();
    assert_eq!(seen.target, "/app/page?a=1&b=2");
    assert_eq!(seen.headers["host"], upstream.to_string());
    assert!(seen.headers.get("origin").is_none());
    assert!(seen.headers.get("authorization").is_none());
    assert_eq!(seen.headers["cookie"], "theme=dark");
    for (_, value) in &seen.headers {
        assert!(!value.to_str().unwrap_or_default().contains(TOKEN));
    }
}

#[tokio::test]
async fn request_bodies_are_forwarded() {
    let (fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let (name, value) = bearer();
    let body = Bytes::from(vec![b'x'; 300_000]);
    let answer = request_with_body(
        relay.addr,
        "POST",
        "/upload",
        &[(name, &value)],
        body.clone(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(fake.last().body, body);
}

#[tokio::test]
async fn an_upstream_named_by_hostname_is_sent_localhost() {
    let (fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&format!("localhost:{}", upstream.port())).await;
    let (name, value) = bearer();
    let answer = request(relay.addr, "GET", "/", &[(name, &value)]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        fake.last().headers["host"],
        format!("localhost:{}", upstream.port())
    );
}

#[tokio::test]
async fn a_query_token_sets_a_cookie_that_alone_lets_a_browser_in() {
    let (fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let page = request(relay.addr, "GET", &format!("/vnc.html?token={TOKEN}"), &[]).await;
    assert_eq!(page.status, 200);
    let set = page.headers["set-cookie"].to_str().unwrap();
    assert_eq!(
        set,
        format!("{}; HttpOnly; SameSite=Strict; Path=/", cookie())
    );
    assert_eq!(fake.last().target, "/vnc.html");

    let asset = request(relay.addr, "GET", "/app/ui.js", &[("cookie", &cookie())]).await;
    assert_eq!(asset.status, 200);
    assert!(fake.last().headers.get("cookie").is_none());
    // The noVNC page's WebSocket, with the cookie only.
    let mut upgrade = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{}/ws",
        relay.addr
    ))
    .unwrap();
    upgrade
        .headers_mut()
        .insert("cookie", cookie().parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(upgrade).await.unwrap();
    ws.send(tungstenite::Message::text("hello")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().to_text().unwrap(),
        "hello"
    );

    let wrong = request(relay.addr, "GET", "/", &[("cookie", "yard_relay=abcd")]).await;
    assert_eq!(wrong.status, 401);
}

#[tokio::test]
async fn websocket_upgrades_reach_the_upstream_without_origin_or_token() {
    let (fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let mut upgrade = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{}/ws?token={TOKEN}",
        relay.addr
    ))
    .unwrap();
    upgrade
        .headers_mut()
        .insert("origin", "http://attacker.example".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(upgrade).await.unwrap();
    assert_eq!(response.status(), 101);
    assert!(response.headers().get("set-cookie").is_some());
    for text in ["one", "two", &"x".repeat(200_000)] {
        ws.send(tungstenite::Message::text(text)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap().to_text().unwrap(), text);
    }
    let seen = fake.last();
    assert_eq!(seen.target, "/ws");
    assert_eq!(seen.headers["host"], upstream.to_string());
    assert!(seen.headers.get("origin").is_none());
    assert!(seen.headers.get("authorization").is_none());
}

#[tokio::test]
async fn an_upgrade_the_upstream_refuses_is_passed_back() {
    let (_fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    match tokio_tungstenite::connect_async(format!(
        "ws://{}/json/activate/x?token={TOKEN}",
        relay.addr
    ))
    .await
    {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 200);
            assert_eq!(response.body().as_deref(), Some(&b"Target activated"[..]));
        }
        other => panic!("expected the upstream's own answer, got {other:?}"),
    }
    match tokio_tungstenite::connect_async(format!("ws://{}/ws", relay.addr)).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test]
async fn json_answers_lead_back_to_the_client_host_with_a_right_content_length() {
    let (_fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let (name, value) = bearer();
    let answer = request(
        relay.addr,
        "GET",
        "/json/version",
        &[(name, &value), ("host", "relay.example:9223")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let length: usize = answer.headers["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, answer.body.len());
    let version = answer.json();
    assert_eq!(
        version["webSocketDebuggerUrl"],
        format!("ws://relay.example:9223/devtools/browser/B1?token={TOKEN}")
    );
    assert_eq!(version["Browser"], "Fake/1");

    // Open access hands out URLs without a token.
    let open = RunningRelay::start(&upstream.to_string(), Access::Open).await;
    let answer = request(open.addr, "GET", "/json/version", &[]).await;
    assert_eq!(
        answer.json()["webSocketDebuggerUrl"],
        format!("ws://{}/devtools/browser/B1", open.addr)
    );
}

#[tokio::test]
async fn a_host_that_is_not_an_authority_is_refused_on_json_paths() {
    let (_fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let (name, value) = bearer();
    for host in [
        "evil.example/x",
        "user@evil.example",
        "a b",
        "evil.example:99999",
    ] {
        let answer = request(
            relay.addr,
            "GET",
            "/json/version",
            &[(name, &value), ("host", host)],
        )
        .await;
        assert_eq!(answer.status, 400, "{host}: {}", answer.text());
    }
}

#[tokio::test]
async fn a_json_answer_that_is_not_json_is_a_502_that_says_so() {
    let (fake, upstream) = Fake::start().await;
    *fake.version.lock().unwrap() = (
        "text/html",
        "<html><body>not the browser</body></html>".to_owned(),
    );
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let (name, value) = bearer();
    let answer = request(relay.addr, "GET", "/json/version", &[(name, &value)]).await;
    assert_eq!(answer.status, 502);
    assert!(
        answer
            .text()
            .contains("the browser's /json answer is not JSON"),
        "{}",
        answer.text()
    );
    // A plain-text command answer passes through untouched.
    let activated = request(relay.addr, "GET", "/json/activate/x", &[(name, &value)]).await;
    assert_eq!(activated.status, 200);
    assert_eq!(activated.text(), "Target activated");
}

#[tokio::test]
async fn a_json_answer_too_large_is_a_502() {
    let (_fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let (name, value) = bearer();
    let answer = request(relay.addr, "GET", "/json/list", &[(name, &value)]).await;
    assert_eq!(answer.status, 502);
    assert!(
        answer.text().contains("larger than 4 MiB"),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn an_upstream_with_nothing_listening_is_a_quick_502_naming_it() {
    let vacant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = vacant.local_addr().unwrap().to_string();
    drop(vacant);
    let relay = RunningRelay::with_token(&upstream).await;
    let (name, value) = bearer();
    let started = Instant::now();
    let answer = request(relay.addr, "GET", "/json/version", &[(name, &value)]).await;
    assert_eq!(answer.status, 502);
    assert!(answer.text().contains(&upstream), "{}", answer.text());
    match tokio_tungstenite::connect_async(format!(
        "ws://{}/devtools/page/x?token={TOKEN}",
        relay.addr
    ))
    .await
    {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 502),
        other => panic!("expected 502, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_upstream_that_never_accepts_is_a_502_within_the_connect_timeout() {
    // A listener with a backlog of one that never accepts: once its queue
    // is full, the kernel drops further connection attempts unanswered.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let upstream = listener.local_addr().unwrap();
    let mut held = Vec::new();
    while let Ok(Ok(stream)) = tokio::time::timeout(
        Duration::from_millis(300),
        tokio::net::TcpStream::connect(upstream),
    )
    .await
    {
        held.push(stream);
        assert!(held.len() < 64, "the backlog never filled");
    }
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let (name, value) = bearer();
    let started = Instant::now();
    let answer = request(relay.addr, "GET", "/json/version", &[(name, &value)]).await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.text().contains(&upstream.to_string()),
        "{}",
        answer.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_cuts_open_tunnels() {
    let (_fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let addr = relay.addr;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={TOKEN}"))
        .await
        .unwrap();
    ws.send(tungstenite::Message::text("before")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().to_text().unwrap(),
        "before"
    );

    let started = Instant::now();
    relay.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let after = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap();
    assert!(
        !matches!(after, Some(Ok(tungstenite::Message::Text(_)))),
        "the tunnel is still open: {after:?}"
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn open_access_off_loopback_and_a_bad_upstream_stop_run_at_once() {
    let public = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let open = RelayConfig {
        upstream: "127.0.0.1:9222".to_owned(),
        access: Access::Open,
    };
    let refused = yard_relay::run(public, open, std::future::pending()).await;
    assert!(
        matches!(refused, Err(RelayError::OpenNotOnLoopback { .. })),
        "{refused:?}"
    );

    let local = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad = RelayConfig {
        upstream: "http://127.0.0.1:9222/".to_owned(),
        access: Access::Token(TOKEN.to_owned()),
    };
    let refused = yard_relay::run(local, bad, std::future::pending()).await;
    assert!(
        matches!(refused, Err(RelayError::InvalidUpstream(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn bad_requests_get_answers_not_panics() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_fake, upstream) = Fake::start().await;
    let relay = RunningRelay::with_token(&upstream.to_string()).await;
    let (name, value) = bearer();
    let odd = [
        "/json/version?token=%ZZ&token=%",
        "/%00/../json?token=&&&=",
        "/json/new?http://x/?token=&token=",
    ];
    for target in odd {
        let answer = request(
            relay.addr,
            "PUT",
            target,
            &[(name, &value), ("cookie", ";;=;yard_relay")],
        )
        .await;
        assert!(answer.status.as_u16() < 600, "{target}");
    }
    for garbage in [
        &b"\x00\x01\x02 garbage\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: [\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out)).await;
    }
    // Still serving.
    let answer = request(relay.addr, "GET", "/", &[(name, &value)]).await;
    assert_eq!(answer.status, 200);
}
