//! The relay in front of a real headless Chromium: the DevTools endpoint
//! answers through it with the token and only with the token, its URLs
//! lead back through it, and a page opened through it can be driven and
//! captured, also after the session has been quiet for a while.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Cdp, Chromium, RunningRelay, TOKEN, bearer, request};
use serde_json::json;
use tokio_tungstenite::tungstenite;

/// The page the browser opens, served by the test.
const PAGE: &str = "<html><head><title>yard relay test</title></head><body>hi</body></html>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devtools_endpoint_answers_through_the_relay_with_the_token_only() {
    let browser = Chromium::start();
    let relay = RunningRelay::with_token(&browser.upstream()).await;
    let (name, value) = bearer();

    let version = request(relay.addr, "GET", "/json/version", &[(name, &value)]).await;
    assert_eq!(version.status, 200, "{}", version.text());
    let version = version.json();
    let url = version["webSocketDebuggerUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("ws://{}/devtools/browser/", relay.addr)),
        "{url}"
    );
    assert!(url.ends_with(&format!("?token={TOKEN}")), "{url}");
    let mut cdp = Cdp::connect(url).await;
    let product = cdp.call("Browser.getVersion", json!({})).await;
    assert!(
        product["product"].as_str().unwrap().contains("Chrome"),
        "{product}"
    );

    // Without the token, or with a wrong one: 401, for HTTP and upgrades.
    let none = request(relay.addr, "GET", "/json/version", &[]).await;
    assert_eq!(none.status, 401);
    let wrong = request(
        relay.addr,
        "GET",
        "/json/version",
        &[("authorization", "Bearer not-the-token")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(!wrong.text().contains(TOKEN));
    let bare = url.split('?').next().unwrap();
    for attempt in [bare.to_owned(), format!("{bare}?token=wrong")] {
        match tokio_tungstenite::connect_async(&attempt).await {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("{attempt} should be refused with 401, got {other:?}"),
        }
    }

    // `?token=` sets the cookie, and the cookie alone then lets one in.
    let by_query = request(relay.addr, "GET", &format!("/json/list?token={TOKEN}"), &[]).await;
    assert_eq!(by_query.status, 200);
    let cookie = by_query.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap();
    let by_cookie = request(relay.addr, "GET", "/json/version", &[("cookie", pair)]).await;
    assert_eq!(by_cookie.status, 200, "{}", by_cookie.text());
    assert!(by_cookie.headers.get("set-cookie").is_none());
    // The DevTools frontend's WebSocket, opened from the page with the
    // cookie: Chromium checks Origin, and the relay does not pass it on.
    let mut upgrade = tungstenite::client::IntoClientRequest::into_client_request(bare).unwrap();
    upgrade
        .headers_mut()
        .insert("cookie", pair.parse().unwrap());
    upgrade
        .headers_mut()
        .insert("origin", "http://somewhere.example".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(upgrade).await.unwrap();
    futures::SinkExt::send(
        &mut ws,
        tungstenite::Message::text(r#"{"id":1,"method":"Browser.getVersion"}"#),
    )
    .await
    .unwrap();
    let answer = futures::StreamExt::next(&mut ws).await.unwrap().unwrap();
    assert!(
        answer.to_text().unwrap().contains("protocolVersion"),
        "{answer}"
    );

    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_opened_through_the_relay_is_driven_captured_and_outlives_a_quiet_spell() {
    let browser = Chromium::start();
    let relay = RunningRelay::with_token(&browser.upstream()).await;
    let site = serve_page().await;
    let (name, value) = bearer();

    let target = format!("/json/new?http://{site}/");
    let created = request(relay.addr, "PUT", &target, &[(name, &value)]).await;
    assert_eq!(created.status, 200, "{}", created.text());
    let created = created.json();
    let url = created["webSocketDebuggerUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("ws://{}/devtools/page/", relay.addr)),
        "{url}"
    );

    let mut cdp = Cdp::connect(url).await;
    cdp.call("Page.enable", json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let title = cdp.evaluate("document.title").await;
        if title == "yard relay test" {
            break;
        }
        assert!(Instant::now() < deadline, "the page never loaded: {title}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shot = cdp
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let data = shot["data"].as_str().unwrap();
    // The PNG signature, 89 50 4E 47 0D 0A 1A 0A, in base64.
    assert!(
        data.starts_with("iVBORw0KGgo"),
        "not a PNG: {}",
        &data[..20]
    );

    // A quiet session stays open.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cdp.evaluate("1 + 1").await, 2);

    // The list names the page with URLs that lead back through the relay.
    let list = request(relay.addr, "GET", "/json/list", &[(name, &value)]).await;
    let list = list.json();
    let page = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == created["id"])
        .unwrap();
    let frontend = page["devtoolsFrontendUrl"].as_str().unwrap();
    let relayed = format!("ws={}/devtools/page/", relay.addr);
    assert!(frontend.contains(&relayed), "{frontend}");
    assert!(!frontend.contains(&browser.upstream()), "{frontend}");

    // Chromium's plain-text answers pass through unchanged.
    let id = created["id"].as_str().unwrap();
    let closed = request(
        relay.addr,
        "GET",
        &format!("/json/close/{id}"),
        &[(name, &value)],
    )
    .await;
    assert_eq!(closed.status, 200);
    assert_eq!(closed.text(), "Target is closing");
    relay.stop().await.unwrap();
}

/// Serves [`PAGE`] on an ephemeral port; its address.
async fn serve_page() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { axum::response::Html(PAGE) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
