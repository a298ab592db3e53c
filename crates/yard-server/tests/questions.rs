//! Questions for a person over HTTP, tried as people and agents would:
//! who sees which questions, who may answer, and answers that do not fit.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::{Options, TestYard, assert_error_response};
use yard_core::{AgentId, Question, QuestionKind, QuestionOutcome, Timestamp};
use yard_testkit::git_repo_at;

/// Makes a user token named `name`; returns its secret.
async fn user(yard: &TestYard, name: &str) -> String {
    let response = yard
        .post_json("/api/tokens", &json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    created["secret"].as_str().unwrap().to_owned()
}

/// Spawns one waiting agent as `token` in a new repository inside the
/// root; returns its id and credential.
async fn agent_of(yard: &TestYard, token: &str, repo: &str) -> (String, String) {
    let path = yard.repos.join(repo);
    git_repo_at(&path, &[("README.md", "hello\n")]);
    let response = yard
        .http
        .post(format!("{}/api/agents", yard.base))
        .bearer_auth(token)
        .json(&json!({"repo": path.display().to_string(), "task": "wait"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let id = body["agents"][0]["id"].as_str().unwrap().to_owned();
    let credential = yard.sweep.agent_token(&id).await;
    (id, credential)
}

/// Records a pending question of agent `id`, as asking would.
async fn question_of(yard: &TestYard, id: &str, kind: QuestionKind) -> String {
    let agent = yard
        .store
        .agent(&AgentId::from_trusted(id.to_owned()))
        .await
        .unwrap()
        .unwrap();
    let question = Question {
        id: format!("q-{}", AgentId::generate()),
        agent_id: agent.id.clone(),
        owner_id: agent.owner.map(|o| o.id),
        kind,
        message: "may I drop the table?".into(),
        context: Some("Bash: psql -c 'drop table t'".into()),
        deadline: Timestamp(i64::MAX / 2),
        created_at: Timestamp(1),
        outcome: QuestionOutcome::Pending,
    };
    yard.store.insert_question(&question).await.unwrap();
    question.id
}

async fn list_as(yard: &TestYard, token: &str) -> Vec<Value> {
    let response = yard
        .http
        .get(format!("{}/api/questions", yard.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["questions"].as_array().unwrap().clone()
}

async fn answer_as(yard: &TestYard, token: &str, id: &str, body: Value) -> reqwest::Response {
    yard.http
        .post(format!("{}/api/questions/{id}/answer", yard.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn people_answer_their_own_agents_questions_once_and_agents_answer_none() {
    let yard = TestYard::start(Options::default()).await;
    let (alice, bob) = (user(&yard, "alice").await, user(&yard, "bob").await);
    let (agent, credential) = agent_of(&yard, &alice, "shop").await;
    let select = QuestionKind::Select {
        options: vec!["keep".into(), "drop".into()],
    };
    let id = question_of(&yard, &agent, select).await;

    let seen = list_as(&yard, &alice).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["id"], id.as_str());
    assert_eq!(seen[0]["agentId"], agent.as_str());
    assert_eq!(seen[0]["kind"], "select");
    assert_eq!(seen[0]["options"], json!(["keep", "drop"]));
    assert!(seen[0]["deadline"].as_str().is_some());
    assert!(list_as(&yard, &bob).await.is_empty(), "not bob's agent");
    assert_eq!(
        list_as(&yard, &yard.token).await.len(),
        1,
        "an admin sees all"
    );

    // An agent's credential is not a person's.
    let response = answer_as(&yard, &credential, &id, json!({"answer": "drop"})).await;
    assert_eq!(response.status(), 401);
    let response = yard
        .http
        .get(format!("{}/api/questions", yard.base))
        .bearer_auth(&credential)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Bad answers change nothing.
    let said = assert_error_response(
        answer_as(&yard, &bob, &id, json!({"answer": "drop"})).await,
        404,
        "not_found",
    )
    .await;
    assert!(said.contains("no question"), "{said}");
    let said = assert_error_response(
        answer_as(&yard, &alice, &id, json!({"answer": "burn"})).await,
        400,
        "invalid_request",
    )
    .await;
    assert!(said.contains("keep, drop"), "{said}");
    assert_error_response(
        answer_as(&yard, &alice, "q-unknown", json!({"answer": "keep"})).await,
        404,
        "not_found",
    )
    .await;
    assert_error_response(
        answer_as(&yard, &alice, &id, json!({"answer": "keep", "extra": 1})).await,
        400,
        "invalid_json",
    )
    .await;
    assert_eq!(list_as(&yard, &alice).await.len(), 1, "still pending");

    let response = answer_as(
        &yard,
        &alice,
        &id,
        json!({"answer": "keep", "reason": "we need it"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answered: Value = response.json().await.unwrap();
    assert_eq!(answered["outcome"], "answered");
    assert_eq!(answered["answer"], "keep");
    assert_eq!(answered["answeredBy"], "alice");
    assert_eq!(answered["reason"], "we need it");
    assert_error_response(
        answer_as(&yard, &yard.token, &id, json!({"answer": "drop"})).await,
        409,
        "question_settled",
    )
    .await;
    assert!(list_as(&yard, &alice).await.is_empty());

    // Text questions want text.
    let text = question_of(&yard, &agent, QuestionKind::Text).await;
    assert_error_response(
        answer_as(&yard, &alice, &text, json!({"answer": "   "})).await,
        400,
        "invalid_request",
    )
    .await;
}
