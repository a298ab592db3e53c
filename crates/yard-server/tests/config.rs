//! The yard's settings over REST (admin only; a secret's value never comes
//! back) and the forge's webhook, believed only with the signature of the
//! secret set there: a real yard on an ephemeral port.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use reqwest::StatusCode;
use ring::hmac;
use serde_json::{Value, json};
use support::{Options, TestYard, assert_error_response};
use yard_core::ConfigKey;

const AWKWARD: &str = "it's; \"quoted\"\n'); DROP TABLE config; --\nünïcødé ✓";

fn put(yard: &TestYard, key: &str, value: &str) -> reqwest::RequestBuilder {
    yard.http
        .put(format!("{}/api/config/{key}", yard.base))
        .bearer_auth(&yard.token)
        .json(&json!({ "value": value }))
}

/// The listing's entry for `key`.
fn entry<'a>(list: &'a Value, key: &str) -> &'a Value {
    list["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap()
}

#[tokio::test]
async fn an_admin_sets_lists_and_unsets_settings_and_a_secret_never_comes_back() {
    let yard = TestYard::start(Options::default()).await;
    let list = yard.get_json("/api/config").await;
    let keys: Vec<&str> = list["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ConfigKey::ALL.map(ConfigKey::as_str));
    assert!(
        list["settings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["set"] == false)
    );

    let url = put(&yard, "forge.url", "http://127.0.0.1:3001")
        .send()
        .await
        .unwrap();
    assert_eq!(url.status(), 200);
    let url: Value = url.json().await.unwrap();
    assert_eq!(
        (url["set"].clone(), url["secret"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(url["value"], "http://127.0.0.1:3001");

    let token = put(&yard, "forge.bot_token", AWKWARD).send().await.unwrap();
    assert_eq!(token.status(), 200);
    let token = token.text().await.unwrap();
    assert!(
        !token.contains("DROP TABLE"),
        "the answer does not repeat a secret: {token}"
    );
    let stored = yard
        .store
        .config(ConfigKey::ForgeBotToken)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.secret && stored.value.starts_with("v1:"));
    assert!(!stored.value.contains("DROP"), "sealed at rest");

    let text = yard
        .get("/api/config")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains("DROP TABLE") && !text.contains("ünïcødé"),
        "{text}"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    let token = entry(&list, "forge.bot_token");
    assert_eq!(
        (token["set"].clone(), token["secret"].clone()),
        (json!(true), json!(true))
    );
    assert!(token.get("value").is_none(), "{token}");
    assert_eq!(entry(&list, "forge.url")["value"], "http://127.0.0.1:3001");
    assert_eq!(entry(&list, "claude.token")["set"], false);

    let unset = yard
        .delete("/api/config/forge.bot_token")
        .send()
        .await
        .unwrap();
    assert_eq!(unset.status(), 200);
    let list = yard.get_json("/api/config").await;
    assert_eq!(entry(&list, "forge.bot_token")["set"], false);
    assert!(
        yard.store
            .config(ConfigKey::ForgeBotToken)
            .await
            .unwrap()
            .is_none()
    );
    let again = yard
        .delete("/api/config/forge.bot_token")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "unsetting twice is no error");

    let unknown = put(&yard, "forge.token", "x").send().await.unwrap();
    let message = assert_error_response(unknown, 400, "invalid_request").await;
    assert!(
        message.contains("forge.token") && message.contains("forge.bot_token"),
        "names the known settings: {message}"
    );
    let unknown = yard.delete("/api/config/nope").send().await.unwrap();
    assert_error_response(unknown, 400, "invalid_request").await;
    let empty = put(&yard, "claude.token", "").send().await.unwrap();
    let message = assert_error_response(empty, 400, "invalid_request").await;
    assert!(message.contains("unset"), "{message}");
    let not_a_url = put(&yard, "forge.url", "gitea:3000").send().await.unwrap();
    assert_error_response(not_a_url, 400, "invalid_request").await;
    let no_value = yard
        .http
        .put(format!("{}/api/config/forge.url", yard.base))
        .bearer_auth(&yard.token)
        .json(&json!({ "val": "x" }))
        .send()
        .await
        .unwrap();
    assert_error_response(no_value, 400, "invalid_json").await;
}

/// `method path` over the control socket, with a bearer token; the status.
async fn over_socket(socket: &Path, method: &str, path: &str, token: &str) -> u16 {
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "yard")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(r#"{"value":"x"}"#)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test]
async fn only_an_admin_reaches_the_settings() {
    let yard = TestYard::start(Options::default()).await;
    let made: Value = yard
        .post_json("/api/tokens", &json!({ "name": "carol" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = made["secret"].as_str().unwrap().to_owned();
    let url = format!("{}/api/config", yard.base);
    let key_url = format!("{url}/forge.url");
    let as_user = [
        yard.http.get(&url).bearer_auth(&user),
        yard.http
            .put(&key_url)
            .bearer_auth(&user)
            .json(&json!({ "value": "http://x" })),
        yard.http.delete(&key_url).bearer_auth(&user),
    ];
    for request in as_user {
        assert_error_response(request.send().await.unwrap(), 403, "forbidden").await;
    }
    // No token, and something shaped like an agent's credential.
    let agent_like = format!("yard_agent_{}", "ab".repeat(32));
    for token in [None, Some(agent_like.as_str())] {
        let requests = [
            yard.http.get(&url),
            yard.http
                .put(&key_url)
                .json(&json!({ "value": "http://x" })),
            yard.http.delete(&key_url),
        ];
        for request in requests {
            let request = match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            };
            assert_error_response(request.send().await.unwrap(), 401, "unauthorized").await;
        }
    }
    // The control socket, where agents are, has no such routes at all.
    for method in ["GET", "PUT", "DELETE"] {
        let path = if method == "GET" {
            "/api/config"
        } else {
            "/api/config/forge.url"
        };
        assert_eq!(
            over_socket(&yard.socket, method, path, &yard.token).await,
            404
        );
    }
    assert_eq!(
        over_socket(&yard.socket, "POST", "/webhook/gitea", &yard.token).await,
        404,
        "nor the forge's webhook"
    );
    assert!(
        yard.store
            .config(ConfigKey::ForgeUrl)
            .await
            .unwrap()
            .is_none()
    );
}

const SECRET: &str = "the forge's; 'webhook' secret";

fn sign(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        body,
    ))
}

/// A delivery as the forge makes it; `None` leaves a header out.
fn deliver(
    yard: &TestYard,
    body: &[u8],
    signature: Option<&str>,
    delivery: Option<&str>,
    event: &str,
) -> reqwest::RequestBuilder {
    let mut request = yard
        .http
        .post(format!("{}/webhook/gitea", yard.base))
        .header("content-type", "application/json")
        .header("x-gitea-event", event)
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-gitea-signature", signature);
    }
    if let Some(delivery) = delivery {
        request = request.header("x-gitea-delivery", delivery);
    }
    request
}

async fn status_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_forges_webhook_is_believed_only_with_the_secrets_signature_and_acted_on_once() {
    let yard = TestYard::start(Options::default()).await;
    let body = json!({
        "action": "assigned",
        "issue": { "number": 7, "title": "Fix it" },
        "repository": { "full_name": "team/app" }
    })
    .to_string();
    let body = body.as_bytes();

    // No secret yet: the yard cannot tell the forge from anyone else.
    let unset = deliver(
        &yard,
        body,
        Some(&sign(SECRET, body)),
        Some("d-1"),
        "issues",
    )
    .send()
    .await
    .unwrap();
    let message = assert_error_response(unset, 503, "unavailable").await;
    assert!(message.contains("webhook secret is not set"), "{message}");

    assert_eq!(
        put(&yard, "forge.webhook_secret", SECRET)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let good = sign(SECRET, body);

    // Refused deliveries record nothing: d-1 is new afterwards.
    let wrong = sign("another secret", body);
    let not_hex = "g".repeat(64);
    for signature in [
        None,
        Some(&good[..40]),
        Some(not_hex.as_str()),
        Some(wrong.as_str()),
    ] {
        let response = deliver(&yard, body, signature, Some("d-1"), "issues")
            .send()
            .await
            .unwrap();
        assert!(response.headers().get("www-authenticate").is_none());
        assert_error_response(response, 401, "bad_signature").await;
    }
    let tampered = br#"{"action":"closed"}"#;
    let response = deliver(&yard, tampered, Some(&good), Some("d-1"), "issues")
        .send()
        .await
        .unwrap();
    assert_error_response(response, 401, "bad_signature").await;
    let not_json = b"action=assigned";
    let response = deliver(
        &yard,
        not_json,
        Some(&sign(SECRET, not_json)),
        Some("d-1"),
        "issues",
    )
    .send()
    .await
    .unwrap();
    assert_error_response(response, 400, "invalid_json").await;
    let response = deliver(&yard, body, Some(&good), None, "issues")
        .send()
        .await
        .unwrap();
    let message = assert_error_response(response, 400, "invalid_request").await;
    assert!(message.contains("X-Gitea-Delivery"), "{message}");

    let first = deliver(&yard, body, Some(&good), Some("d-1"), "issues")
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(first).await, "accepted");
    let redelivery = deliver(&yard, body, Some(&good), Some("d-1"), "issues")
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(redelivery).await, "duplicate");
    for (id, event) in [
        ("d-2", "issue_comment"),
        ("d-3", "pull_request"),
        ("d-4", "push"),
    ] {
        let response = deliver(&yard, body, Some(&good), Some(id), event)
            .send()
            .await
            .unwrap();
        assert_eq!(status_of(response).await, "accepted", "{event}");
    }
    let release = deliver(&yard, body, Some(&good), Some("d-5"), "release")
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(release).await, "ignored");
    let again = deliver(&yard, body, Some(&good), Some("d-5"), "release")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_of(again).await,
        "duplicate",
        "ignored ones are recorded too"
    );

    let big = vec![b' '; yard_server::MAX_WEBHOOK_BODY_BYTES + 1];
    let response = deliver(&yard, &big, Some(&sign(SECRET, &big)), Some("d-6"), "push")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is read (and is not JSON).
    let mut near = b"{}".to_vec();
    near.resize(yard_server::MAX_WEBHOOK_BODY_BYTES, b' ');
    let response = deliver(
        &yard,
        &near,
        Some(&sign(SECRET, &near)),
        Some("d-7"),
        "push",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(status_of(response).await, "accepted");

    // The webhook is in the API's document, without a token.
    let doc = yard.get_json("/api/openapi.json").await;
    let webhook = &doc["paths"]["/webhook/gitea"]["post"];
    assert!(webhook["security"].is_null(), "{webhook}");
    assert!(doc["paths"]["/api/config/{key}"]["put"].is_object());
}
