//! The REST API, SSE progress and host router, on a real port with a real
//! store and the real Docker engine.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::{Options, TestYard, assert_error_response};
use yard_testkit::{CRASH_IMAGE, SLOW_IMAGE};

/// Sends `request` and asserts the error answer's status and code.
async fn assert_error(request: reqwest::RequestBuilder, status: u16, code: &str) -> String {
    assert_error_response(request.send().await.unwrap(), status, code).await
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_leaves_nothing_behind() {
    let yard = TestYard::start(Options::default()).await;
    let long = "a".repeat(21);
    for name in [
        "ab",
        "-abc",
        "abc-",
        "a_b",
        "ABC DEF",
        long.as_str(),
        "api",
        "ünïcode",
        "",
    ] {
        assert_error(
            yard.post_json("/api/deploy", &json!({ "name": name })),
            400,
            "invalid_name",
        )
        .await;
    }
    let raw = |body: Vec<u8>| {
        yard.http
            .post(format!("{}/api/deploy", yard.base))
            .bearer_auth(&yard.token)
            .header("content-type", "application/json")
            .body(body)
    };
    assert_error(raw(Vec::new()), 400, "invalid_json").await;
    assert_error(raw(b"[\"alice\"]".to_vec()), 400, "invalid_json").await;
    assert_error(raw(b"{\"name\": 5}".to_vec()), 400, "invalid_json").await;
    assert_error(raw(b"{".to_vec()), 400, "invalid_json").await;
    let mib = format!("{{\"name\": \"{}\"}}", "a".repeat(1024 * 1024)).into_bytes();
    assert_error(raw(mib), 413, "payload_too_large").await;
    let form = yard
        .http
        .post(format!("{}/api/deploy", yard.base))
        .bearer_auth(&yard.token)
        .body("name=alice");
    assert_error(form, 415, "unsupported_media_type").await;

    let no_token = yard
        .http
        .post(format!("{}/api/deploy", yard.base))
        .json(&json!({"name": "alice"}));
    let response = no_token.send().await.unwrap();
    assert!(response.headers().contains_key("www-authenticate"));
    assert_error_response(response, 401, "unauthorized").await;
    for token in ["yard_0000", "not-even-a-token", ""] {
        let response = yard
            .http
            .get(format!("{}/api/stacks", yard.base))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_error_response(response, 401, "unauthorized").await;
    }
    let basic = yard
        .http
        .get(format!("{}/api/stacks", yard.base))
        .basic_auth("admin", Some(&yard.token));
    assert_error(basic, 401, "unauthorized").await;

    assert_error(yard.get("/api/status/no-such-id"), 404, "not_found").await;
    assert_error(yard.get("/api/deployments/no-such-id"), 404, "not_found").await;
    assert_error(yard.delete("/api/stacks/nobody"), 404, "not_found").await;
    assert_error(yard.get("/api/deployments?limit=lots"), 400, "bad_request").await;
    assert_error(yard.get("/api/nothing-here"), 404, "not_found").await;
    assert_error(yard.get("/api/deploy"), 405, "method_not_allowed").await;

    assert!(
        yard.store.deployments(100).await.unwrap().is_empty(),
        "no deployment recorded"
    );
    assert!(
        yard.sweep.leftovers().await.is_empty(),
        "no container, network or volume made"
    );
}

#[tokio::test]
async fn checking_a_name_explains_the_verdict() {
    let yard = TestYard::start(Options::default()).await;
    let yard = &yard;
    let check = |name: &str| {
        let path = format!("/api/check/{}", urlencode(name));
        async move { yard.get_json(&path).await }
    };
    assert_eq!(
        check("Alice").await,
        json!({"available": true, "valid": true})
    );
    let refused = check("a_b").await;
    assert_eq!(
        (refused["available"].as_bool(), refused["valid"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(
        refused["error"].as_str().unwrap().contains("'_'"),
        "{refused}"
    );
    assert!(
        check("admin").await["error"]
            .as_str()
            .unwrap()
            .contains("reserved")
    );
    assert!(
        check(" ").await["error"]
            .as_str()
            .unwrap()
            .contains("empty")
    );

    yard.deploy_and_wait("alice").await;
    let taken = check("alice").await;
    assert_eq!(
        (taken["available"].as_bool(), taken["valid"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(taken["error"].as_str().unwrap().contains("taken"));
}

fn urlencode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_deployment_streams_its_progress_and_the_stack_answers_at_its_address() {
    let yard = TestYard::start(Options {
        image: SLOW_IMAGE.to_owned(),
        ..Options::default()
    })
    .await;
    let id = yard.deploy("alice").await;

    // Many watchers at once, all from the start.
    let watchers: Vec<_> = (0..20).map(|_| yard.events(&id)).collect();
    let all = futures::future::join_all(watchers).await;
    for events in &all {
        let (last, last_data) = events.last().unwrap();
        assert_eq!(last, "complete", "{events:?}");
        assert_eq!(
            last_data["url"],
            format!("http://alice.localhost:{}", yard.port)
        );
        let progress: Vec<u64> = events
            .iter()
            .filter(|(name, _)| name == "progress")
            .map(|(_, data)| data["progress"].as_u64().unwrap())
            .collect();
        assert!(
            progress.windows(2).all(|w| w[0] < w[1]),
            "progress only rises: {progress:?}"
        );
        assert_eq!(progress.last(), Some(&100));
        assert_eq!(
            events.iter().filter(|(name, _)| name != "progress").count(),
            1
        );
        let statuses: BTreeSet<&str> = events
            .iter()
            .filter_map(|(_, d)| d["status"].as_str())
            .collect();
        assert!(
            statuses.contains("deploying") && statuses.contains("completed"),
            "{statuses:?}"
        );
    }

    // A late watcher gets the current state, then the outcome.
    let late = yard.events(&id).await;
    assert_eq!(late.len(), 2, "{late:?}");
    assert_eq!(late[0].1["status"], "completed");
    assert_eq!(late[1].0, "complete");

    let page = yard.stack("alice", "/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap().trim(), "stack alice");

    let stacks: Value = yard.get_json("/api/stacks").await;
    assert_eq!(stacks["stacks"][0]["name"], "alice");
    assert_eq!(stacks["stacks"][0]["status"], "completed");
    let one: Value = yard.get_json(&format!("/api/deployments/{id}")).await;
    assert_eq!(
        (one["status"].as_str(), one["progress"].as_u64()),
        (Some("completed"), Some(100))
    );

    let again = yard.post_json("/api/deploy", &json!({"name": "ALICE"}));
    assert_error(again, 409, "name_taken").await;

    let removed = yard.delete("/api/stacks/alice").send().await.unwrap();
    assert_eq!(removed.status(), 200);
    assert_eq!(removed.json::<Value>().await.unwrap()["status"], "removed");
    assert!(yard.sweep.leftovers().await.is_empty());
    assert_eq!(yard.stack("alice", "/").send().await.unwrap().status(), 404);
    let stacks: Value = yard.get_json("/api/stacks").await;
    assert_eq!(stacks["stacks"], json!([]));
    let history: Value = yard.get_json("/api/deployments").await;
    assert_eq!(history["deployments"][0]["status"], "removed");
}

#[tokio::test]
async fn a_stack_that_is_still_deploying_cannot_be_removed_or_reached() {
    let yard = TestYard::start(Options {
        image: SLOW_IMAGE.to_owned(),
        ..Options::default()
    })
    .await;
    let id = yard.deploy("bob").await;
    assert_error(
        yard.delete("/api/stacks/bob"),
        409,
        "deployment_in_progress",
    )
    .await;
    assert_eq!(yard.stack("bob", "/").send().await.unwrap().status(), 503);
    let active: Value = yard.health().await;
    assert_eq!(active["activeDeployments"], 1);
    assert_eq!(yard.events(&id).await.last().unwrap().0, "complete");
}

#[tokio::test]
async fn a_failed_deployment_rolls_back_and_frees_its_name() {
    let yard = TestYard::start(Options {
        image: CRASH_IMAGE.to_owned(),
        ..Options::default()
    })
    .await;
    let (event, data) = yard.deploy_and_wait("carol").await;
    assert_eq!(event, "error");
    let message = data["message"].as_str().unwrap();
    assert!(
        message.contains("exited with code 3") && message.contains("stack refuses to start"),
        "{message}"
    );
    assert!(yard.sweep.leftovers().await.is_empty(), "rolled back");

    let history: Value = yard.get_json("/api/deployments").await;
    let failed = &history["deployments"][0];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["message"], message);
    assert!(
        failed["currentStep"]
            .as_str()
            .unwrap()
            .starts_with("Failed while deploying")
    );
    let check: Value = yard.get_json("/api/check/carol").await;
    assert_eq!(
        check["available"], true,
        "a failed deployment frees its name"
    );
    assert_error(yard.delete("/api/stacks/carol"), 404, "not_found").await;
}

#[tokio::test]
async fn a_missing_image_fails_the_deployment_with_a_fix() {
    let yard = TestYard::start(Options {
        image: "agentyard-test/not-built:1".to_owned(),
        ..Options::default()
    })
    .await;
    let (event, data) = yard.deploy_and_wait("dave").await;
    assert_eq!(event, "error");
    assert!(
        data["message"]
            .as_str()
            .unwrap()
            .contains("YARD_STACK_IMAGE"),
        "{data}"
    );
    assert!(yard.sweep.leftovers().await.is_empty());
}

#[tokio::test]
async fn concurrent_requests_for_one_name_have_one_winner() {
    let yard = TestYard::start(Options::default()).await;
    let requests = (0..8).map(|_| {
        yard.post_json("/api/deploy", &json!({"name": "erin"}))
            .send()
    });
    let mut statuses = Vec::new();
    let mut winner = None;
    for response in futures::future::join_all(requests).await {
        let response = response.unwrap();
        statuses.push(response.status().as_u16());
        let body: Value = response.json().await.unwrap();
        if let Some(id) = body["deploymentId"].as_str() {
            winner = Some(id.to_owned());
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    // Done before the test ends, so nothing is made after the sweep.
    assert_eq!(
        yard.events(&winner.unwrap()).await.last().unwrap().0,
        "complete"
    );
}

#[tokio::test]
async fn health_needs_no_token() {
    let yard = TestYard::start(Options::default()).await;
    let health: Value = yard.health().await;
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["service"], "agentyard");
    assert_eq!(health["activeDeployments"], 0);
    assert!(health["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(health["version"].is_string());
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let yard = TestYard::start(Options::default()).await;
    assert_eq!(
        yard.http
            .get(format!("{}/api/openapi.json", yard.base))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let doc: Value = yard.get_json("/api/openapi.json").await;
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/api/check/{name}", "get"),
        ("/api/deploy", "post"),
        ("/api/status/{deploymentId}", "get"),
        ("/api/deployments", "get"),
        ("/api/deployments/{deploymentId}", "get"),
        ("/api/stacks", "get"),
        ("/api/stacks/{name}", "delete"),
        ("/api/stacks/{name}/restart", "post"),
        ("/api/stacks/{name}/open", "get"),
        ("/api/events", "get"),
        ("/api/session", "post"),
        ("/api/session", "get"),
        ("/api/session", "delete"),
        ("/api/tokens", "get"),
        ("/api/tokens", "post"),
        ("/api/tokens/{token}", "delete"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert!(doc["paths"]["/health"]["get"].get("security").is_none());
    assert_eq!(
        doc["paths"]["/api/deploy"]["post"]["security"],
        json!([{"bearer": []}])
    );
    assert!(
        doc["components"]["schemas"]["DeploymentStatus"]["enum"]
            .as_array()
            .unwrap()
            .len()
            == 8
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_same_flow_runs_on_postgres() {
    let yard = TestYard::start(Options {
        database_url: Some(yard_testkit::fresh_postgres_url().await),
        ..Options::default()
    })
    .await;
    let (event, _) = yard.deploy_and_wait("frank").await;
    assert_eq!(event, "complete");
    assert_eq!(
        yard.stack("frank", "/")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .trim(),
        "stack frank"
    );
    assert_eq!(
        yard.delete("/api/stacks/frank")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(yard.sweep.leftovers().await.is_empty());
}

#[tokio::test]
async fn unknown_stack_addresses_get_a_page_not_an_error() {
    let yard = TestYard::start(Options::default()).await;
    let response = yard.stack("ghost", "/").send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("There is no stack named")
    );
    // A stack's address never reaches the yard's own API.
    let response = yard.stack("ghost", "/api/stacks").send().await.unwrap();
    assert_eq!(response.status(), 404);
    let html = yard
        .stack("<script>", "/")
        .send()
        .await
        .unwrap()
        .text()
        .await;
    assert!(html.map(|h| !h.contains("<script>")).unwrap_or(true));
}

#[tokio::test]
async fn the_page_is_served_without_a_token_under_a_strict_policy() {
    let yard = TestYard::start(Options::default()).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let response = yard
            .http
            .get(format!("{}{path}", yard.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let page = yard
        .http
        .get(format!("{}/", yard.base))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("app.js"));
    // The page holds no data: everything it shows needs a credential.
    assert_error(
        yard.http.get(format!("{}/api/events", yard.base)),
        401,
        "unauthorized",
    )
    .await;
    assert_error(
        yard.http.get(format!("{}/nothing-here.js", yard.base)),
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_stack_list_streams_every_change() {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;

    let yard = TestYard::start(Options::default()).await;
    let response = yard.get("/api/events").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream().eventsource();
    let mut next_list = async || -> Vec<(String, String)> {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.next())
            .await
            .expect("a list in time")
            .unwrap()
            .unwrap();
        assert_eq!(event.event, "stacks");
        let list: Value = serde_json::from_str(&event.data).unwrap();
        list["stacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_owned(),
                    s["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(next_list().await, [], "the current list comes first");
    yard.deploy_and_wait("listed").await;
    let mut seen = Vec::new();
    loop {
        let list = next_list().await;
        let done = list == [("listed".to_owned(), "completed".to_owned())];
        seen.push(list);
        if done {
            break;
        }
    }
    assert!(
        seen.iter().all(|l| l.len() == 1 && l[0].0 == "listed"),
        "{seen:?}"
    );
    assert_eq!(
        yard.delete("/api/stacks/listed")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    loop {
        if next_list().await.is_empty() {
            break;
        }
    }
}

/// One Docker engine gives out about 30 bridge networks from its default
/// pools; the yard's stacks share one network, so many more fit, and
/// traffic between stacks stays cut.
#[tokio::test]
async fn more_stacks_than_docker_has_networks_for_answer_and_cannot_reach_each_other() {
    const STACKS: usize = 40;
    let yard = TestYard::start(Options::default()).await;
    let names: Vec<String> = (0..STACKS).map(|i| format!("many-{i:02}")).collect();
    for chunk in names.chunks(10) {
        let outcomes =
            futures::future::join_all(chunk.iter().map(|name| yard.deploy_and_wait(name))).await;
        for ((last, payload), name) in outcomes.iter().zip(chunk) {
            assert_eq!(last, "complete", "{name}: {payload}");
        }
    }
    let yard = &yard;
    let answers = futures::future::join_all(names.iter().map(|name| async move {
        let page = yard.stack(name, "/").send().await.unwrap();
        (page.status().as_u16(), page.text().await.unwrap())
    }))
    .await;
    for (name, (status, page)) in names.iter().zip(&answers) {
        assert_eq!(
            (*status, page.trim()),
            (200, format!("stack {name}").as_str())
        );
    }
    let networks = yard
        .sweep
        .resources()
        .await
        .into_iter()
        .filter(|r| r.starts_with("network"))
        .count();
    assert_eq!(networks, 1, "one network for all the stacks");

    // From inside one stack, another's container does not answer; the
    // control shows the same request reaching the stack itself.
    let address = |name: &str| {
        let sweep = &yard.sweep;
        let label = format!("agentyard.stack={name}");
        async move {
            let container = sweep.inspect(&label).await;
            let ip = container
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|n| n.into_values().find_map(|e| e.ip_address))
                .unwrap();
            (
                container.name.unwrap().trim_start_matches('/').to_owned(),
                ip,
            )
        }
    };
    let (first, first_ip) = address(&names[0]).await;
    let (_, second_ip) = address(&names[1]).await;
    let fetch = |from: &str, ip: &str| {
        let out = std::process::Command::new("docker")
            .args(["exec", from, "/bin/busybox", "sh", "-c"])
            .arg(format!(
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 2 {ip} 8080"
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        fetch(&first, &first_ip).contains("stack many-00"),
        "the control"
    );
    let across = fetch(&first, &second_ip);
    assert!(
        !across.contains("stack"),
        "one stack reached another: {across}"
    );
}
