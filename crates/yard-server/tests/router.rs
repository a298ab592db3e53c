//! The host router with a stack that echoes what it gets: requests of every
//! method with bodies streamed through, and WebSocket messages, sent to
//! `NAME.localhost`, reach the stack's container and come back; the yard's
//! own credentials never do.

#![allow(clippy::unwrap_used)]

mod support;

use futures::{SinkExt, StreamExt};
use support::{Options, TestYard};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket to `url`, over a connection to the yard's port whatever
/// host `url` names (so `*.localhost` needs no resolver).
async fn connect(
    yard: &TestYard,
    url: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    tokio_tungstenite::tungstenite::Error,
> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", yard.port))
        .await
        .unwrap();
    let request = url.into_client_request().unwrap();
    tokio_tungstenite::client_async(request, stream)
        .await
        .map(|(socket, _)| socket)
}

async fn echo_yard() -> TestYard {
    echo_yard_with(Options::default()).await
}

async fn echo_yard_with(options: Options) -> TestYard {
    let image = yard_testkit::ensure_http_echo_image().await;
    let yard = TestYard::start(Options { image, ..options }).await;
    let (last, payload) = yard.deploy_and_wait("echo").await;
    assert_eq!(last, "complete", "{payload}");
    yard
}

#[tokio::test]
async fn every_method_and_streamed_bodies_go_through() {
    let yard = echo_yard().await;
    let url = format!("{}/upload?part=1", yard.base);
    let host = format!("echo.localhost:{}", yard.port);
    for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "GET"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let body = if method == reqwest::Method::GET {
            ""
        } else {
            "a body"
        };
        let answer = yard
            .http
            .request(method.clone(), &url)
            .header("host", &host)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{method}");
        assert_eq!(
            answer.text().await.unwrap(),
            format!("{method} /upload?part=1\n{body}")
        );
    }
    // 8 MiB in chunks, far past the API's own body limit: the router
    // streams it to the stack and the answer back.
    let chunk = bytes::Bytes::from(vec![b'y'; 64 * 1024]);
    let chunks =
        futures::stream::iter((0..128).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let answer = yard
        .http
        .post(&url)
        .header("host", &host)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let echoed = answer.bytes().await.unwrap();
    let head = b"POST /upload?part=1\n";
    assert_eq!(echoed.len(), head.len() + 128 * 64 * 1024);
    assert!(echoed.starts_with(head) && echoed[head.len()..].iter().all(|b| *b == b'y'));
}

#[tokio::test]
async fn websocket_messages_go_through_the_stack_address_and_back() {
    let yard = echo_yard().await;
    let url = format!("ws://echo.localhost:{}/socket", yard.port);
    let mut socket = connect(&yard, &url).await.unwrap();
    let large = "x".repeat(200_000);
    let messages = [
        Message::text("hello, stack"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::text(large),
    ];
    for message in messages {
        socket.send(message.clone()).await.unwrap();
        let echoed = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("an echo in time")
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
    // A second connection at the same time is its own conversation.
    let mut other = connect(&yard, &url).await.unwrap();
    other.send(Message::text("second")).await.unwrap();
    socket.send(Message::text("first")).await.unwrap();
    assert_eq!(
        other.next().await.unwrap().unwrap(),
        Message::text("second")
    );
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::text("first")
    );
    socket.close(None).await.unwrap();
    other.close(None).await.unwrap();

    // An upgrade to a stack that does not exist gets the 404 page, not a
    // hung connection.
    let missing = connect(&yard, &format!("ws://nobody.localhost:{}/", yard.port)).await;
    match missing {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404);
        }
        other => panic!("expected a 404, got {other:?}"),
    }
}

/// The request head the echo stack received for `request`.
async fn head_seen(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_yards_credentials_never_reach_a_stack_protected_or_not() {
    for protect_stacks in [false, true] {
        let yard = echo_yard_with(Options {
            protect_stacks,
            ..Options::default()
        })
        .await;
        let url = format!("{}/_headers", yard.base);
        let host = format!("echo.localhost:{}", yard.port);
        // A person's bearer token and every yard cookie, with the person's
        // own cookie beside them.
        let head = head_seen(
            yard.http
                .get(&url)
                .header("host", &host)
                .bearer_auth(&yard.token)
                .header("cookie", "theirs=1; yard_session=stolen; yard_stack=stolen")
                .header("x-custom", "kept"),
        )
        .await;
        let lower = head.to_lowercase();
        assert!(!lower.contains("yard_"), "protect={protect_stacks}: {head}");
        assert!(
            !lower.contains("authorization"),
            "protect={protect_stacks}: {head}"
        );
        assert!(
            lower.contains("theirs=1") && lower.contains("x-custom: kept"),
            "{head}"
        );

        // A stack's own Authorization is not the yard's, and goes through:
        // with the stack's session when protected, plainly otherwise.
        let mut own = yard
            .http
            .get(&url)
            .header("host", &host)
            .header("authorization", "Bearer stack-own-token");
        if protect_stacks {
            let open = yard.get("/api/stacks/echo/open").send().await.unwrap();
            let ticket_url = open.headers()["location"].to_str().unwrap().to_owned();
            let path = ticket_url.split_once("localhost").unwrap().1;
            let path = &path[path.find('/').unwrap()..];
            let handed = yard
                .http
                .get(format!("{}{path}", yard.base))
                .header("host", &host)
                .send()
                .await
                .unwrap();
            let cookie = handed.headers()["set-cookie"].to_str().unwrap();
            let cookie = cookie.split(';').next().unwrap().to_owned();
            assert!(cookie.starts_with("yard_stack="), "{cookie}");
            own = own.header("cookie", cookie);
        }
        let head = head_seen(own).await;
        assert!(head.contains("Bearer stack-own-token"), "{head}");
        assert!(!head.contains("yard_stack"), "{head}");
        assert!(!head.contains(&yard.token), "{head}");
    }
}
