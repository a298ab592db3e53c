//! Who may do what: tokens an admin makes for people, the web page's
//! session cookie and its CSRF guard, stack ownership, and protected stack
//! addresses with the portal's hand-over.

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use support::{Options, TestYard, assert_error_response};

/// Makes a user token named `name`; returns its secret.
async fn user_token(yard: &TestYard, name: &str) -> String {
    let response = yard
        .post_json("/api/tokens", &json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        (created["name"].as_str(), created["role"].as_str()),
        (Some(name), Some("user"))
    );
    created["secret"].as_str().unwrap().to_owned()
}

/// Deploys `name` with `token` and follows it; returns the last event's name.
async fn deploy_as(yard: &TestYard, token: &str, name: &str) -> String {
    let accepted: Value = yard
        .http
        .post(format!("{}/api/deploy", yard.base))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = yard
        .events(accepted["deploymentId"].as_str().unwrap())
        .await;
    events.last().unwrap().0.clone()
}

/// Signs in with `token`; returns the session cookie (`name=value`) and
/// the CSRF token.
async fn sign_in(yard: &TestYard, token: &str) -> (String, String) {
    let response = yard
        .http
        .post(format!("{}/api/session", yard.base))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let session: Value = response.json().await.unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(!cookie.contains(token), "the cookie is not the token");
    (cookie, session["csrfToken"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn admins_make_and_revoke_tokens_for_people() {
    let yard = TestYard::start(Options::default()).await;
    let alice = user_token(&yard, "alice").await;

    let listed = yard.get_json("/api/tokens").await;
    let names: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
    assert!(
        !listed.to_string().contains(&alice),
        "secrets are never listed"
    );

    for (body, status, code) in [
        (json!({"name": "alice"}), 409, "token_name_taken"),
        (json!({"name": "a b"}), 400, "invalid_request"),
        (json!({"name": "admin"}), 400, "invalid_request"),
        (
            json!({"name": "carol", "role": "root"}),
            400,
            "invalid_json",
        ),
        (json!({}), 400, "invalid_json"),
    ] {
        let response = yard.post_json("/api/tokens", &body).send().await.unwrap();
        assert_error_response(response, status, code).await;
    }
    // A person's token works for the API, but not for managing tokens.
    let as_alice = |path: &str| {
        yard.http
            .get(format!("{}{path}", yard.base))
            .bearer_auth(&alice)
    };
    assert_eq!(as_alice("/api/stacks").send().await.unwrap().status(), 200);
    assert_error_response(
        as_alice("/api/tokens").send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;

    let revoked = yard.delete("/api/tokens/alice").send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    assert_error_response(
        as_alice("/api/stacks").send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_error_response(
        yard.delete("/api/tokens/alice").send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_error_response(
        yard.delete("/api/tokens/admin").send().await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    let names = yard.get_json("/api/tokens").await["tokens"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(names, 1, "nothing half-made");
}

#[tokio::test]
async fn the_session_cookie_needs_the_csrf_token_for_changes() {
    let yard = TestYard::start(Options::default()).await;
    // A wrong token signs nobody in and sets no cookie.
    let refused = yard
        .http
        .post(format!("{}/api/session", yard.base))
        .json(&json!({ "token": "yard_0000" }))
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get(SET_COOKIE).is_none());
    assert_error_response(refused, 401, "unauthorized").await;

    let (cookie, csrf) = sign_in(&yard, &yard.token).await;
    let with_cookie = |request: reqwest::RequestBuilder| request.header(COOKIE, &cookie);
    let me: Value = with_cookie(yard.http.get(format!("{}/api/session", yard.base)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["name"].as_str(), me["csrfToken"].as_str()),
        (Some("admin"), Some(csrf.as_str()))
    );
    let stacks = with_cookie(yard.http.get(format!("{}/api/stacks", yard.base)))
        .send()
        .await
        .unwrap();
    assert_eq!(stacks.status(), 200, "reads need only the cookie");

    let deploy = || {
        with_cookie(yard.http.post(format!("{}/api/deploy", yard.base)))
            .json(&json!({"name": "csrf1"}))
    };
    let missing = deploy().send().await.unwrap();
    assert_error_response(missing, 403, "csrf_rejected").await;
    let wrong = deploy()
        .header("x-csrf-token", "0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_error_response(wrong, 403, "csrf_rejected").await;
    let foreign = deploy()
        .header("x-csrf-token", &csrf)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_error_response(foreign, 403, "csrf_rejected").await;
    assert_eq!(
        yard.get_json("/api/deployments").await["deployments"],
        json!([]),
        "nothing was deployed"
    );

    let own_origin = format!("http://127.0.0.1:{}", yard.port);
    let accepted = deploy()
        .header("x-csrf-token", &csrf)
        .header("origin", own_origin)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let deployed: Value = accepted.json().await.unwrap();
    yard.events(deployed["deploymentId"].as_str().unwrap())
        .await;

    // Signing out ends the session for good.
    let sign_out = || with_cookie(yard.http.delete(format!("{}/api/session", yard.base)));
    assert_error_response(sign_out().send().await.unwrap(), 403, "csrf_rejected").await;
    let out = sign_out()
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = with_cookie(yard.http.get(format!("{}/api/stacks", yard.base)))
        .send()
        .await
        .unwrap();
    assert_error_response(after, 401, "unauthorized").await;
}

#[tokio::test]
async fn only_owners_and_admins_remove_a_stack() {
    let yard = TestYard::start(Options::default()).await;
    let alice = user_token(&yard, "alice").await;
    let bob = user_token(&yard, "bob").await;
    assert_eq!(deploy_as(&yard, &alice, "alices").await, "complete");
    assert_eq!(
        yard.get_json("/api/stacks").await["stacks"][0]["owner"],
        "alice"
    );

    let remove = |token: &str| {
        yard.http
            .delete(format!("{}/api/stacks/alices", yard.base))
            .bearer_auth(token.to_owned())
    };
    let message = assert_error_response(remove(&bob).send().await.unwrap(), 403, "forbidden").await;
    assert!(message.contains("alice"), "{message}");
    assert_eq!(
        yard.stack("alices", "/").send().await.unwrap().status(),
        200,
        "still up"
    );
    assert_eq!(remove(&alice).send().await.unwrap().status(), 200);
    assert_eq!(yard.get_json("/api/stacks").await["stacks"], json!([]));
}

#[tokio::test]
async fn protected_stacks_answer_only_their_owner() {
    let yard = TestYard::start(Options {
        protect_stacks: true,
        ..Options::default()
    })
    .await;
    let alice = user_token(&yard, "alice").await;
    let bob = user_token(&yard, "bob").await;
    assert_eq!(deploy_as(&yard, &alice, "guarded").await, "complete");

    // Strangers get a page that leads to the portal.
    let stranger = yard.stack("guarded", "/").send().await.unwrap();
    assert_eq!(stranger.status(), 401);
    let page = stranger.text().await.unwrap();
    assert!(page.contains("/api/stacks/guarded/open"), "{page}");
    let as_bob = yard
        .stack("guarded", "/")
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(as_bob.status(), 401);
    // The owner's token and the admin's get through.
    for token in [&alice, &yard.token] {
        let through = yard
            .stack("guarded", "/")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(through.status(), 200);
        assert_eq!(through.text().await.unwrap().trim(), "stack guarded");
    }

    // A browser: signed in to the portal, it opens the stack and is handed
    // over with a one-time ticket that becomes the stack's own cookie.
    let (portal_cookie, _) = sign_in(&yard, &alice).await;
    let open = yard
        .http
        .get(format!("{}/api/stacks/guarded/open", yard.base))
        .header(COOKIE, &portal_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 303);
    let target = open.headers()[LOCATION].to_str().unwrap().to_owned();
    let handover_path = target
        .strip_prefix(&format!("http://guarded.localhost:{}", yard.port))
        .unwrap()
        .to_owned();
    assert!(
        handover_path.starts_with("/_agentyard/session?ticket="),
        "{target}"
    );
    let handover = || yard.stack("guarded", &handover_path).send();
    let handed = handover().await.unwrap();
    assert_eq!(
        (
            handed.status().as_u16(),
            handed.headers()[LOCATION].to_str().unwrap()
        ),
        (303, "/")
    );
    let stack_cookie = handed.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        stack_cookie.contains("HttpOnly") && stack_cookie.contains("SameSite=Lax"),
        "{stack_cookie}"
    );
    let stack_cookie = stack_cookie.split(';').next().unwrap().to_owned();
    let with_cookie = yard
        .stack("guarded", "/")
        .header(COOKIE, &stack_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
    assert_eq!(
        handover().await.unwrap().status(),
        401,
        "a ticket works once"
    );
    // The stack's cookie opens this stack only, and the portal's cookie
    // opens no stack.
    let portal_cookie_on_stack = yard
        .stack("guarded", "/")
        .header(COOKIE, &portal_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(portal_cookie_on_stack.status(), 401);
    let bobs_open = yard
        .http
        .get(format!("{}/api/stacks/guarded/open", yard.base))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_error_response(bobs_open, 403, "forbidden").await;
    // Revoking alice's token ends her stack session too.
    assert_eq!(
        yard.delete("/api/tokens/alice")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let after = yard
        .stack("guarded", "/")
        .header(COOKIE, &stack_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}
