//! The dokploy backend against the test kit's fake Dokploy, which checks
//! every request against Dokploy's OpenAPI document and fails the test on
//! any that breaks it. Also the fake's own schema validator.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use yard_core::StackName;
use yard_engine::dokploy::CertificateType;
use yard_engine::{
    DokployConfig, DokployEngine, Endpoint, Engine, EngineError, ResourceKind, ResourceLimits,
    StackSpec, StackState,
};
use yard_testkit::{DokployFake, SchemaValidator, dokploy_openapi, http};

const INSTANCE: &str = "t1";
const DOMAIN: &str = "stacks.test";
const DEPLOYS_WITHIN: Duration = Duration::from_secs(10);

/// Plain HTTP, stacks reached through the fake (which plays Traefik), and
/// quick looks at deployments.
fn config(fake: &DokployFake) -> DokployConfig {
    let mut config = DokployConfig::new(fake.url(), fake.api_key(), INSTANCE, DOMAIN);
    config.https = false;
    config.certificate = CertificateType::None;
    config.traefik = Some(fake.authority());
    config.poll_interval = Duration::from_millis(10);
    config
}

fn engine(fake: &DokployFake) -> DokployEngine {
    DokployEngine::connect(config(fake)).unwrap()
}

fn spec(name: &str) -> StackSpec {
    StackSpec {
        name: StackName::from_trusted(name),
        image: "registry.example.com/stacks/web:1".to_owned(),
        port: Some(8080),
        env: vec![
            ("YARD_STACK_NAME".into(), name.into()),
            ("GREETING".into(), " hello # world ".into()),
        ],
        limits: ResourceLimits {
            memory_bytes: Some(256 << 20),
            cpus: Some(0.5),
            pids: 64,
        },
    }
}

fn project_name(stack: &str) -> String {
    format!("agentyard-{INSTANCE}-{stack}")
}

fn kinds(resources: &[yard_engine::StackResource]) -> BTreeSet<ResourceKind> {
    resources.iter().map(|r| r.kind).collect()
}

#[tokio::test]
async fn steps_are_idempotent_and_make_one_of_each() {
    let fake = DokployFake::start().await;
    let mut https = config(&fake);
    https.https = true;
    https.certificate = CertificateType::LetsEncrypt;
    let engine = DokployEngine::connect(https).unwrap();
    let alice = spec("alice");

    for _ in 0..2 {
        engine.ensure_project(&alice).await.unwrap();
        engine.ensure_application(&alice).await.unwrap();
    }

    let projects = fake.projects();
    assert_eq!(projects.len(), 1, "{projects:?}");
    assert_eq!(projects[0].name, project_name("alice"));
    let mark = projects[0].description.as_deref().unwrap();
    assert!(
        mark.contains("agentyard.instance=t1") && mark.contains("agentyard.stack=alice"),
        "{mark}"
    );
    let apps = fake.applications();
    assert_eq!(apps.len(), 1, "{apps:?}");
    let app = &apps[0];
    assert_eq!(app.name, project_name("alice"));
    assert!(app.app_name.starts_with(&project_name("alice")), "{app:?}");
    assert_eq!(app.project_id, projects[0].id);
    assert_eq!(
        app.docker_image.as_deref(),
        Some("registry.example.com/stacks/web:1")
    );
    assert_eq!(
        app.env.as_deref(),
        Some("YARD_STACK_NAME=alice\nGREETING=' hello # world '"),
        "values dotenv would change are quoted"
    );
    assert_eq!(app.memory_limit.as_deref(), Some("268435456"));
    assert_eq!(app.cpu_limit.as_deref(), Some("500000000"));
    assert_eq!(app.status, "idle", "not deployed yet");
    let domains = fake.domains();
    assert_eq!(domains.len(), 1, "{domains:?}");
    assert_eq!(domains[0].host, "alice.stacks.test");
    assert_eq!(domains[0].port, Some(8080.0));
    assert!(domains[0].https);
    assert_eq!(domains[0].certificate_type, "letsencrypt");
    assert_eq!(domains[0].application_id.as_deref(), Some(app.id.as_str()));
    for created in ["project.create", "application.create", "domain.create"] {
        assert_eq!(fake.calls(created), 1, "{created}");
    }
    assert!(
        engine.endpoint(&alice.name).await.unwrap().is_none(),
        "not deployed yet"
    );

    // A second stack gets its own of each.
    engine.ensure_project(&spec("bob")).await.unwrap();
    engine.ensure_application(&spec("bob")).await.unwrap();
    assert_eq!(fake.projects().len(), 2);
    assert_eq!(fake.applications().len(), 2);
    fake.assert_clean();
}

#[tokio::test]
async fn a_step_that_failed_halfway_is_finished_by_the_next_run() {
    let fake = DokployFake::start().await;
    let engine = engine(&fake);
    let alice = spec("alice");
    engine.ensure_project(&alice).await.unwrap();

    // The application is made, then Dokploy fails: the next run adopts it.
    fake.fail_next("application.saveDockerProvider", 500);
    let err = engine.ensure_application(&alice).await.unwrap_err();
    match &err {
        EngineError::Backend { operation, message } => {
            assert_eq!(*operation, "application.saveDockerProvider");
            assert!(message.contains("injected by the test"), "{message}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    engine.ensure_application(&alice).await.unwrap();
    assert_eq!(fake.calls("application.create"), 1);
    assert_eq!(fake.applications().len(), 1);
    assert_eq!(fake.domains().len(), 1);
    assert!(fake.applications()[0].docker_image.is_some());

    // The domain failed to be made: made on the next run, once.
    let bob = spec("bob");
    engine.ensure_project(&bob).await.unwrap();
    fake.fail_next("domain.create", 500);
    assert!(engine.ensure_application(&bob).await.is_err());
    engine.ensure_application(&bob).await.unwrap();
    engine.ensure_application(&bob).await.unwrap();
    let hosts: Vec<String> = fake.domains().into_iter().map(|d| d.host).collect();
    assert_eq!(hosts, ["alice.stacks.test", "bob.stacks.test"]);
    fake.assert_clean();
}

#[tokio::test]
async fn a_deploy_ends_at_the_stacks_domain() {
    let fake = DokployFake::start().await;
    let engine = engine(&fake);
    let alice = spec("alice");
    engine.ensure_project(&alice).await.unwrap();
    engine.ensure_application(&alice).await.unwrap();
    fake.deploy_takes(5);

    let endpoint = engine.deploy(&alice, DEPLOYS_WITHIN).await.unwrap();
    assert_eq!(
        endpoint,
        Endpoint::http(fake.authority()).with_host("alice.stacks.test")
    );
    assert!(engine.probe(&endpoint).await);
    let answer = http()
        .get(endpoint.url("/"))
        .header("host", endpoint.host_header())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "stack agentyard-t1-alice");
    assert_eq!(
        engine.endpoint(&alice.name).await.unwrap(),
        Some(endpoint.clone())
    );
    assert_eq!(fake.applications()[0].status, "done");

    // Deployed again (a stale "done" must not end the wait early).
    fake.deploy_takes(3);
    assert_eq!(
        engine.deploy(&alice, DEPLOYS_WITHIN).await.unwrap(),
        endpoint
    );
    assert_eq!(fake.applications()[0].deployments, 2);

    let states = engine.stack_states().await.unwrap();
    assert_eq!(states.len(), 1, "{states:?}");
    match &states[0] {
        (
            name,
            StackState::Running {
                id,
                endpoint: Some(at),
                attached: true,
                healthy: None,
            },
        ) if *name == alice.name => {
            assert_eq!(*id, fake.applications()[0].id);
            assert_eq!(*at, endpoint);
        }
        other => panic!("expected alice running, got {other:?}"),
    }
    let resources = engine.stack_resources().await.unwrap();
    assert_eq!(
        kinds(&resources),
        BTreeSet::from([ResourceKind::Project, ResourceKind::Application])
    );
    assert!(resources.iter().all(|r| r.stack == alice.name));
    fake.assert_clean();
}

#[tokio::test]
async fn a_deploy_dokploy_fails_is_not_ready_with_dokploys_reason() {
    let fake = DokployFake::start().await;
    let engine = engine(&fake);
    let alice = spec("alice");
    engine.ensure_project(&alice).await.unwrap();
    engine.ensure_application(&alice).await.unwrap();
    fake.fail_next_deploy("pull access denied for registry.example.com/stacks/web");

    let err = engine.deploy(&alice, DEPLOYS_WITHIN).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, EngineError::NotReady(_)), "{message}");
    assert!(
        message.contains("pull access denied for registry.example.com/stacks/web"),
        "{message}"
    );
    assert!(
        message.contains("?tab=deployments"),
        "a link to the log: {message}"
    );
    assert!(engine.endpoint(&alice.name).await.unwrap().is_none());
    let states = engine.stack_states().await.unwrap();
    assert!(
        matches!(&states[..], [(_, StackState::Exited { code: 1, .. })]),
        "{states:?}"
    );

    // The next deploy, which works, is not fooled by the stale "error".
    engine.deploy(&alice, DEPLOYS_WITHIN).await.unwrap();
    fake.assert_clean();
}

#[tokio::test]
async fn a_deploy_that_does_not_finish_in_time_is_not_ready() {
    let fake = DokployFake::start().await;
    let engine = engine(&fake);
    let alice = spec("alice");
    engine.ensure_project(&alice).await.unwrap();
    engine.ensure_application(&alice).await.unwrap();
    fake.deploy_takes(100_000);

    let err = engine
        .deploy(&alice, Duration::from_millis(300))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, EngineError::NotReady(_)), "{message}");
    assert!(message.contains("still deploying"), "{message}");
    fake.assert_clean();
}

#[tokio::test]
async fn removal_is_complete_and_repeatable() {
    let fake = DokployFake::start().await;
    let engine = engine(&fake);
    let alice = spec("alice");
    let bob = spec("bob");
    for stack in [&alice, &bob] {
        engine.ensure_project(stack).await.unwrap();
        engine.ensure_application(stack).await.unwrap();
    }
    engine.deploy(&alice, DEPLOYS_WITHIN).await.unwrap();

    let removed = engine.remove_stack(&alice.name).await.unwrap();
    assert_eq!(
        kinds(&removed),
        BTreeSet::from([
            ResourceKind::Project,
            ResourceKind::Application,
            ResourceKind::Domain
        ]),
        "{removed:?}"
    );
    assert!(removed.iter().any(|r| r.name == "alice.stacks.test"));
    assert!(removed.iter().all(|r| r.stack == alice.name));
    let left: Vec<String> = fake.projects().into_iter().map(|p| p.name).collect();
    assert_eq!(left, [project_name("bob")], "only bob's is left");
    assert_eq!(fake.applications().len(), 1);
    assert_eq!(fake.domains().len(), 1);

    assert!(engine.remove_stack(&alice.name).await.unwrap().is_empty());
    assert!(engine.endpoint(&alice.name).await.unwrap().is_none());
    assert_eq!(engine.remove_application(&alice.name).await.unwrap(), None);

    // What is already gone when removed is no error.
    fake.fail_next("application.delete", 404);
    let removed = engine.remove_stack(&bob.name).await.unwrap();
    assert_eq!(kinds(&removed), BTreeSet::from([ResourceKind::Project]));
    assert!(fake.projects().is_empty());
    assert!(fake.applications().is_empty() && fake.domains().is_empty());
    assert!(engine.stack_resources().await.unwrap().is_empty());
    fake.assert_clean();
}

#[tokio::test]
async fn removing_the_application_keeps_the_project() {
    let fake = DokployFake::start().await;
    let engine = engine(&fake);
    let alice = spec("alice");
    engine.ensure_project(&alice).await.unwrap();
    engine.ensure_application(&alice).await.unwrap();
    let id = fake.applications()[0].id.clone();

    assert_eq!(
        engine.remove_application(&alice.name).await.unwrap(),
        Some(id)
    );
    assert!(fake.applications().is_empty());
    assert_eq!(fake.projects().len(), 1);
    assert_eq!(engine.remove_application(&alice.name).await.unwrap(), None);

    // Made again in the same project.
    engine.ensure_application(&alice).await.unwrap();
    engine.deploy(&alice, DEPLOYS_WITHIN).await.unwrap();
    assert_eq!(fake.projects().len(), 1);
    fake.assert_clean();
}

#[tokio::test]
async fn what_a_person_made_with_the_same_name_is_refused_not_adopted() {
    let fake = DokployFake::start().await;
    let engine = engine(&fake);
    let alice = spec("alice");
    fake.add_project(&project_name("alice"), Some("my own project"));

    let err = engine.ensure_project(&alice).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Foreign { kind: ResourceKind::Project, name } if *name == project_name("alice")),
        "{err}"
    );
    assert!(engine.remove_stack(&alice.name).await.unwrap().is_empty());
    assert!(engine.stack_resources().await.unwrap().is_empty());
    assert!(engine.stack_states().await.unwrap().is_empty());
    assert_eq!(fake.projects().len(), 1, "left alone");

    // Another yard instance's stacks are not this one's either.
    let mut other = config(&fake);
    other.instance = "t2".to_owned();
    let other = DokployEngine::connect(other).unwrap();
    other.ensure_project(&spec("bob")).await.unwrap();
    assert!(engine.stack_resources().await.unwrap().is_empty());
    assert!(
        engine
            .remove_stack(&spec("bob").name)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(fake.projects().len(), 2);
    fake.assert_clean();
}

#[tokio::test]
async fn stack_states_follow_dokploys_status() {
    let fake = DokployFake::start().await;
    let engine = engine(&fake);
    let alice = spec("alice");
    engine.ensure_project(&alice).await.unwrap();
    engine.ensure_application(&alice).await.unwrap();
    engine.deploy(&alice, DEPLOYS_WITHIN).await.unwrap();
    let name = project_name("alice");

    fake.set_status(&name, "idle");
    let states = engine.stack_states().await.unwrap();
    assert!(
        matches!(
            &states[..],
            [(
                _,
                StackState::Exited {
                    code: 0,
                    oom: false,
                    ..
                }
            )]
        ),
        "stopped in Dokploy: {states:?}"
    );
    assert!(engine.endpoint(&alice.name).await.unwrap().is_none());
    let endpoint = Endpoint::http(fake.authority()).with_host("alice.stacks.test");
    assert!(
        !engine.probe(&endpoint).await,
        "the fake's Traefik answers 503"
    );

    fake.set_status(&name, "error");
    let states = engine.stack_states().await.unwrap();
    assert!(
        matches!(&states[..], [(_, StackState::Exited { code: 1, .. })]),
        "{states:?}"
    );

    // No event feed: the stream neither yields nor ends.
    let mut events = engine.stack_events();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), events.next())
            .await
            .is_err()
    );
    fake.assert_clean();
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_how_to_fix_it() {
    let fake = DokployFake::start().await;
    let mut wrong = config(&fake);
    wrong.api_key = "not-the-key".to_owned();
    let engine = DokployEngine::connect(wrong).unwrap();

    for err in [
        engine.ping().await.unwrap_err(),
        engine.check().await.unwrap_err(),
        engine.ensure_project(&spec("alice")).await.unwrap_err(),
    ] {
        let message = err.to_string();
        assert!(matches!(err, EngineError::Refused(_)), "{message}");
        assert!(
            message.contains("401") && message.contains("DOKPLOY_API_KEY"),
            "{message}"
        );
        assert!(!message.contains("not-the-key"), "{message}");
    }
    assert!(fake.projects().is_empty());

    // A key without the permission is refused as clearly.
    let engine = self::engine(&fake);
    fake.fail_next("project.all", 403);
    let err = engine.ping().await.unwrap_err();
    assert!(matches!(err, EngineError::Refused(_)), "{err}");
    assert!(err.to_string().contains("403"), "{err}");

    // And the right key works.
    engine.ping().await.unwrap();
    let found = engine.check().await.unwrap();
    assert!(found.contains("takes the API key"), "{found}");
    fake.assert_clean();
}

#[tokio::test]
async fn missing_or_wrong_settings_are_config_errors() {
    let fake = DokployFake::start().await;
    let config_error = |config: DokployConfig| match DokployEngine::connect(config) {
        Err(EngineError::Config(message)) => message,
        Err(other) => panic!("expected a config error, got {other:?}"),
        Ok(_) => panic!("expected a config error"),
    };

    let mut no_url = config(&fake);
    no_url.url = String::new();
    assert!(config_error(no_url).contains("DOKPLOY_URL is not set"));
    let mut no_key = config(&fake);
    no_key.api_key = "  ".to_owned();
    assert!(config_error(no_key).contains("DOKPLOY_API_KEY is not set"));
    let mut no_domain = config(&fake);
    no_domain.domain = String::new();
    assert!(config_error(no_domain).contains("domain"));
    for url in [
        "dokploy.example.com",
        "ftp://dokploy.example.com",
        "https://x/?a=b",
    ] {
        let mut bad = config(&fake);
        bad.url = url.to_owned();
        assert!(config_error(bad).contains("DOKPLOY_URL"), "{url}");
    }
    let mut long = config(&fake);
    long.instance = "a".repeat(30);
    assert!(config_error(long).contains("instance"));

    // The address may be given with /api, and a wildcard domain as such.
    let mut with_api = config(&fake);
    with_api.url = format!("{}/api/", fake.url());
    with_api.domain = "*.Stacks.Test.".to_owned();
    let engine = DokployEngine::connect(with_api).unwrap();
    engine.ping().await.unwrap();
    engine.ensure_project(&spec("alice")).await.unwrap();
    engine.ensure_application(&spec("alice")).await.unwrap();
    assert_eq!(fake.domains()[0].host, "alice.stacks.test");

    // The key shows in no debug output.
    let shown = format!("{:?} {engine:?}", config(&fake));
    assert!(!shown.contains(&fake.api_key()), "{shown}");

    // Nothing listening there: unavailable, naming the address.
    let mut gone = config(&fake);
    gone.url = "http://127.0.0.1:9".to_owned();
    let err = DokployEngine::connect(gone)
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    fake.assert_clean();
}

#[tokio::test]
async fn an_answer_in_a_shape_dokploy_does_not_give_is_a_contract_error() {
    let fake = DokployFake::start().await;
    let engine = engine(&fake);
    let alice = spec("alice");

    fake.wrong_shape_next("project.all");
    let err = engine.ensure_project(&alice).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, EngineError::Contract(_)), "{message}");
    assert!(message.contains("project.all"), "{message}");

    fake.wrong_shape_next("project.create");
    let err = engine.ensure_project(&alice).await.unwrap_err();
    assert!(matches!(err, EngineError::Contract(_)), "{err}");
    assert!(err.to_string().contains("project.create"), "{err}");

    engine.ensure_project(&alice).await.unwrap();
    engine.ensure_application(&alice).await.unwrap();
    fake.wrong_shape_next("application.one");
    let err = engine.deploy(&alice, DEPLOYS_WITHIN).await.unwrap_err();
    assert!(matches!(err, EngineError::Contract(_)), "{err}");
    assert!(err.to_string().contains("application.one"), "{err}");
    fake.assert_clean();
}

#[tokio::test]
async fn the_fake_rejects_requests_that_break_dokploys_document() {
    let fake = DokployFake::start().await;
    let client = http();
    let api = |operation: &str| format!("{}/api/{operation}", fake.url());

    // A body with a bad appName, a number for a string, an unknown field
    // and no name.
    let answer = client
        .post(api("application.create"))
        .header("x-api-key", fake.api_key())
        .json(&json!({
            "appName": "not a valid name!",
            "environmentId": 5,
            "color": "blue",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "BAD_REQUEST");
    let problems = SchemaValidator::new(dokploy_openapi()).validate(
        &dokploy_openapi()["components"]["schemas"]["error.BAD_REQUEST"],
        &body,
    );
    assert!(
        problems.is_empty(),
        "the documented error shape: {problems:?}"
    );
    let violations = fake.take_violations();
    let all = violations.join("\n");
    for expected in [
        "$.appName",
        "$.environmentId",
        "$.color",
        "\"name\" is required",
    ] {
        assert!(all.contains(expected), "{expected} in:\n{all}");
    }
    assert!(fake.applications().is_empty(), "nothing was made");

    // A query without its required parameter, and with an unknown one.
    let answer = client
        .get(format!("{}?appId=1", api("application.one")))
        .header("x-api-key", fake.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let all = fake.take_violations().join("\n");
    assert!(all.contains("\"applicationId\" is required"), "{all}");
    assert!(all.contains("\"appId\" is not in the document"), "{all}");

    // The wrong method, an operation Dokploy does not have, no JSON type.
    let answer = client
        .post(api("project.all"))
        .header("x-api-key", fake.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let answer = client
        .post(api("project.frobnicate"))
        .header("x-api-key", fake.api_key())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let answer = client
        .post(api("project.create"))
        .header("x-api-key", fake.api_key())
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let violations = fake.take_violations();
    assert_eq!(violations.len(), 3, "{violations:?}");

    // No key: 401 in Dokploy's shape, and no violation (it is not the
    // document that was broken).
    let answer = client.get(api("project.all")).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED");

    // An unknown id: 404 with NOT_FOUND, as project.one documents.
    let answer = client
        .get(format!("{}?projectId=nope", api("project.one")))
        .header("x-api-key", fake.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "NOT_FOUND");
    fake.assert_clean();
}

#[test]
fn the_validator_checks_types_objects_and_combinators() {
    let root = json!({
        "components": { "schemas": {
            "port": { "anyOf": [
                { "type": "number", "minimum": 1, "maximum": 65535 },
                { "type": "null" },
            ]},
        }},
    });
    let v = SchemaValidator::new(&root);
    let schema = json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 5 },
            "port": { "$ref": "#/components/schemas/port" },
            "kind": { "type": "string", "enum": ["a", "b"] },
            "fixed": { "const": 3 },
            "tags": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
            "either": { "oneOf": [{ "type": "integer" }, { "type": "number", "minimum": 10 }] },
            "maybe": { "type": ["string", "null"] },
            "old": { "type": "string", "nullable": true },
        },
        "required": ["name"],
    });
    let ok = json!({
        "name": "abc", "port": null, "kind": "a", "fixed": 3.0, "tags": ["x"],
        "either": 1, "maybe": null, "old": null, "extra": true,
    });
    assert_eq!(v.validate(&schema, &ok), Vec::<String>::new());

    let bad = json!({
        "port": 70000, "kind": "c", "fixed": 4, "tags": [], "either": 12, "maybe": 1,
    });
    let problems = v.validate(&schema, &bad).join("\n");
    for expected in [
        "$: \"name\" is required",
        "$.port: 70000 matches none of anyOf",
        "$.kind: \"c\" is not one of",
        "$.fixed: 4 is not 3",
        "$.tags: 0 items, at least 1 needed",
        "$.either: 12 matches 2 of oneOf",
        "$.maybe: expected string or null, found number",
    ] {
        assert!(problems.contains(expected), "{expected} in:\n{problems}");
    }
    let problems = v
        .validate(&schema, &json!({ "name": "toolong" }))
        .join("\n");
    assert!(problems.contains("longer than 5"), "{problems}");
    assert!(!v.validate(&schema, &json!("text")).is_empty());

    // Closed: an undeclared property is reported, an explicit
    // additionalProperties still decides.
    assert!(
        v.closed(true)
            .validate(&schema, &ok)
            .join("\n")
            .contains("$.extra: not in the document"),
    );
    let map = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    assert!(
        v.closed(true)
            .validate(&map, &json!({ "a": "b" }))
            .is_empty()
    );
    assert!(!v.validate(&map, &json!({ "a": 1 })).is_empty());
    let shut = json!({ "type": "object", "properties": {}, "additionalProperties": false });
    assert!(!v.validate(&shut, &json!({ "a": 1 })).is_empty());

    // What it does not know, it does not pass.
    let unknown = json!({ "type": "string", "dependentSchemas": {} });
    assert!(v.validate(&unknown, &json!("x"))[0].contains("dependentSchemas"));
    let dangling = json!({ "$ref": "#/components/schemas/nope" });
    assert!(v.validate(&dangling, &json!(1))[0].contains("cannot resolve"));
}

#[test]
fn the_validator_matches_the_documents_patterns() {
    let root = json!({});
    let v = SchemaValidator::new(&root);
    let check = |pattern: &str, text: &str| {
        v.validate(
            &json!({ "type": "string", "pattern": pattern }),
            &json!(text),
        )
        .is_empty()
    };
    let app_name = "^[a-zA-Z0-9._-]+$";
    assert!(check(app_name, "agentyard-t1-alice"));
    assert!(!check(app_name, "agentyard t1"));
    assert!(!check(app_name, ""));
    let duration = r"^(all|\d+[smhd])$";
    assert!(check(duration, "all") && check(duration, "15m"));
    assert!(!check(duration, "15") && !check(duration, "alls"));
    let email = r"^(?!\.)(?!.*\.\.)([A-Za-z0-9_'+\-\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}$";
    assert!(check(email, "someone.else@example.com"));
    assert!(!check(email, ".someone@example.com"));
    assert!(!check(email, "some..one@example.com"));
    assert!(!check(email, "someone@example.c"));
    let symbols = r"^[a-zA-Z0-9@#%^&*()_+\-=[\]{}|;:,.<>?~`]*$";
    assert!(check(symbols, "p@ss[w]{o}rd-1"));
    assert!(!check(symbols, "no spaces"));
    // Unanchored, like ECMAScript's test; counted repetition.
    assert!(check("b{2,3}", "abbc") && !check("^b{2,3}$", "bbbb"));
    // A pattern beyond the matcher is a violation, not a pass.
    assert!(!check(r"\bword", "word"));

    // Every pattern in Dokploy's document is one the matcher reads.
    let mut patterns = Vec::new();
    collect_patterns(dokploy_openapi(), &mut patterns);
    assert!(patterns.len() > 10);
    for pattern in patterns {
        let problems = v.validate(&json!({ "pattern": pattern }), &json!(""));
        assert!(
            problems.iter().all(|p| !p.contains("cannot check")),
            "{pattern}: {problems:?}"
        );
    }
}

fn collect_patterns(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("pattern", Value::String(p)) => out.push(p.clone()),
                    _ => collect_patterns(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_patterns(v, out)),
        _ => {}
    }
}
