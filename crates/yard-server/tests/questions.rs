//! Questions for a person over HTTP, tried as people and agents would:
//! who sees which questions, who may answer, and answers that do not fit.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

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
        origin: None,
        agent_task: None,
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

/// A policy that asks a person before `psql`.
const ASK_PSQL: &str = r#"
[[rules]]
name = "tables"
tool = "Bash"
command = "psql*"
decision = "ask"
reason = "Changing tables needs a person."
"#;

/// A scripted answering client on `/api/questions/ws`.
struct Answerer {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Answerer {
    async fn connect(yard: &TestYard, token: &str) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("ws://127.0.0.1:{}/api/questions/ws", yard.port);
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Self { socket }
    }

    /// The next message, as JSON.
    async fn next(&mut self) -> Value {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a message within 15 s")
                .expect("the channel is open")
                .unwrap();
            match message {
                Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The next message of type `kind`; others are skipped.
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    async fn send(&mut self, message: Value) {
        use futures::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                message.to_string().into(),
            ))
            .await
            .unwrap();
    }

    /// Claims the next question asked and answers it with `answer`;
    /// returns the question.
    async fn answer_next(&mut self, answer: &str, reason: Option<&str>) -> Value {
        let question = self.next_of("asked").await["question"].clone();
        self.answer(&question, answer, reason).await;
        question
    }

    /// Claims `question` and answers it with `answer`.
    async fn answer(&mut self, question: &Value, answer: &str, reason: Option<&str>) {
        let id = question["id"].as_str().unwrap().to_owned();
        self.send(json!({"type": "claim", "id": id})).await;
        let claimed = self.next_of("claimed").await;
        assert_eq!(
            (claimed["id"].as_str(), claimed["mine"].as_bool()),
            (Some(id.as_str()), Some(true))
        );
        let mut message = json!({"type": "answer", "id": id, "answer": answer});
        if let Some(reason) = reason {
            message["reason"] = json!(reason);
        }
        self.send(message).await;
        let settled = self.next_of("settled").await;
        assert_eq!(settled["question"]["id"], id.as_str());
    }
}

/// Calls MCP tool `tool` in the background; resolves to its structured
/// result.
fn call_tool(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &'static str,
    arguments: Value,
) -> tokio::task::JoinHandle<Value> {
    let peer = client.peer().clone();
    tokio::spawn(async move {
        let params = rmcp::model::CallToolRequestParams::new(tool)
            .with_arguments(arguments.as_object().unwrap().clone());
        let result = peer.call_tool(params).await.unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
        result.structured_content.unwrap()
    })
}

/// `POST /hook` with an agent's credential, in the background; resolves
/// to the hook output.
fn hook_as(yard: &TestYard, credential: &str, event: Value) -> tokio::task::JoinHandle<Value> {
    let request = yard
        .http
        .post(format!("{}/hook", yard.base))
        .bearer_auth(credential)
        .json(&event);
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    })
}

async fn returned(call: tokio::task::JoinHandle<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .expect("the waiting call returns once answered")
        .unwrap()
}

#[tokio::test]
async fn a_scripted_client_answers_every_kind_and_each_waiting_call_returns_that_answer() {
    let yard = TestYard::start(Options {
        policy: Some(ASK_PSQL.to_owned()),
        ..Options::default()
    })
    .await;
    let alice = user(&yard, "alice").await;
    let (_, credential) = agent_of(&yard, &alice, "shop").await;
    let mut client = Answerer::connect(&yard, &alice).await;
    let hello = client.next().await;
    assert_eq!(
        hello,
        json!({"type": "pending", "questions": [], "claimed": []})
    );
    let mcp = yard.mcp_as(&credential).await;

    // The three MCP tools.
    let call = call_tool(&mcp, "confirm_action", json!({"message": "Deploy now?"}));
    let asked = client.answer_next("yes", Some("go ahead")).await;
    assert_eq!(asked["kind"], "confirm");
    let result = returned(call).await;
    assert_eq!(
        (&result["outcome"], &result["answer"], &result["reason"]),
        (&json!("answered"), &json!("yes"), &json!("go ahead"))
    );
    assert!(
        result["summary"]
            .as_str()
            .unwrap()
            .contains("alice answered")
    );

    let call = call_tool(
        &mcp,
        "select_option",
        json!({"message": "Which colour?", "options": ["blue", "green"]}),
    );
    let asked = client.answer_next("green", None).await;
    assert_eq!(asked["options"], json!(["blue", "green"]));
    assert_eq!(returned(call).await["answer"], "green");

    let call = call_tool(&mcp, "request_guidance", json!({"message": "I am stuck"}));
    client.answer_next("use the cache", None).await;
    assert_eq!(returned(call).await["answer"], "use the cache");

    // A hook `ask`: the person denies, with a reason the agent is told.
    let call = hook_as(
        &yard,
        &credential,
        json!({"hook_event_name": "PreToolUse", "tool_name": "Bash",
               "tool_input": {"command": "psql -c 'drop table t'"}}),
    );
    let asked = client.answer_next("deny", Some("not today")).await;
    assert_eq!(asked["kind"], "permission");
    assert_eq!(asked["context"], "Bash: psql -c 'drop table t'");
    let output = returned(call).await["hookSpecificOutput"].clone();
    assert_eq!(output["permissionDecision"], "deny");
    assert!(
        output["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .contains("not today"),
        "{output}"
    );

    // AskUserQuestion: each question shown, the choices sent back in the
    // form Claude Code takes from a hook.
    let questions = json!([
        {"question": "Which database?", "header": "DB", "multiSelect": false,
         "options": [{"label": "Postgres", "description": "the usual"}, {"label": "SQLite"}]},
        {"question": "Run migrations?", "header": "Migrate", "multiSelect": false,
         "options": [{"label": "Now"}, {"label": "Later"}]}
    ]);
    let call = hook_as(
        &yard,
        &credential,
        json!({"hook_event_name": "PreToolUse", "tool_name": "AskUserQuestion",
               "tool_input": {"questions": questions}}),
    );
    let first = client.next_of("asked").await["question"].clone();
    let second = client.next_of("asked").await["question"].clone();
    assert_eq!(first["message"], "[DB] Which database?");
    assert_eq!(first["options"], json!(["Postgres", "SQLite"]));
    assert_eq!(first["context"], "Postgres: the usual");
    client.answer(&second, "Later", None).await;
    client.answer(&first, "SQLite", None).await;
    let output = returned(call).await["hookSpecificOutput"].clone();
    assert_eq!(output["permissionDecision"], "allow", "{output}");
    assert_eq!(output["updatedInput"]["questions"], questions);
    assert_eq!(
        output["updatedInput"]["answers"],
        json!({"Which database?": "SQLite", "Run migrations?": "Later"})
    );

    // An Elicitation: a form with one field, filled from the text answer.
    let call = hook_as(
        &yard,
        &credential,
        json!({"hook_event_name": "Elicitation", "mcp_server_name": "tracker",
               "message": "Name the release", "mode": "form",
               "requested_schema": {"type": "object", "properties": {"name": {"type": "string"}}}}),
    );
    let asked = client.answer_next("v2.1", None).await;
    assert_eq!(asked["kind"], "text");
    assert_eq!(
        returned(call).await,
        json!({"hookSpecificOutput": {"hookEventName": "Elicitation", "action": "accept",
               "content": {"name": "v2.1"}}})
    );
    assert!(list_as(&yard, &alice).await.is_empty());
}

#[tokio::test]
async fn a_client_that_drops_releases_its_question_and_bad_messages_change_nothing() {
    let yard = TestYard::start(Options::default()).await;
    let (alice, bob) = (user(&yard, "alice").await, user(&yard, "bob").await);
    let (agent, credential) = agent_of(&yard, &alice, "shop").await;
    let id = question_of(&yard, &agent, QuestionKind::Confirm).await;

    let mut first = Answerer::connect(&yard, &alice).await;
    let mut second = Answerer::connect(&yard, &alice).await;
    let mut stranger = Answerer::connect(&yard, &bob).await;
    for client in [&mut first, &mut second] {
        let hello = client.next_of("pending").await;
        assert_eq!(hello["questions"][0]["id"], id.as_str());
    }
    assert_eq!(stranger.next_of("pending").await["questions"], json!([]));

    first.send(json!({"type": "claim", "id": id})).await;
    assert_eq!(first.next_of("claimed").await["mine"], true);
    assert_eq!(second.next_of("claimed").await["mine"], false);
    // Shown by the first client: the second may neither claim nor answer.
    second.send(json!({"type": "claim", "id": id})).await;
    let refused = second.next_of("error").await;
    assert_eq!(refused["code"], "question_claimed", "{refused}");
    second
        .send(json!({"type": "answer", "id": id, "answer": "yes"}))
        .await;
    assert_eq!(second.next_of("error").await["code"], "question_claimed");
    // Bad messages: each refused with a reason, the channel stays open.
    for (bad, code) in [
        (
            json!({"type": "answer", "id": "q-none", "answer": "yes"}),
            "not_found",
        ),
        (json!({"type": "dance"}), "invalid_json"),
        (json!({"type": "answer", "id": id}), "invalid_json"),
    ] {
        second.send(bad.clone()).await;
        let error = second.next_of("error").await;
        assert_eq!(error["code"], code, "{bad}: {error}");
        assert!(error["error"].as_str().unwrap().len() > 10);
    }
    second.send(json!("not an object")).await;
    assert_eq!(second.next_of("error").await["code"], "invalid_json");
    // Another person's question does not exist for bob.
    stranger.send(json!({"type": "claim", "id": id})).await;
    assert_eq!(stranger.next_of("error").await["code"], "not_found");

    // The first client goes away mid-question: offered again at once.
    drop(first);
    let released = second.next_of("released").await;
    assert_eq!(released["id"], id.as_str());
    second
        .send(json!({"type": "answer", "id": id, "answer": "no"}))
        .await;
    let settled = second.next_of("settled").await;
    assert_eq!(settled["question"]["answer"], "no");
    second
        .send(json!({"type": "answer", "id": id, "answer": "yes"}))
        .await;
    assert_eq!(second.next_of("error").await["code"], "question_settled");

    // An agent's credential cannot open the channel.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://127.0.0.1:{}/api/questions/ws", yard.port)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {credential}").parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("an agent's credential was let in: {other:?}"),
    }
}

#[tokio::test]
async fn with_nobody_answering_the_deadline_settles_it_and_the_fallback_applies() {
    let yard = TestYard::start(Options {
        policy: Some(ASK_PSQL.to_owned()),
        question_timeout: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let alice = user(&yard, "alice").await;
    let (_, credential) = agent_of(&yard, &alice, "shop").await;
    let started = std::time::Instant::now();
    let output = returned(hook_as(
        &yard,
        &credential,
        json!({"hook_event_name": "PreToolUse", "tool_name": "Bash",
               "tool_input": {"command": "psql -c 'select 1'"}}),
    ))
    .await["hookSpecificOutput"]
        .clone();
    assert_eq!(output["permissionDecision"], "deny");
    assert!(
        output["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .contains("nobody answered"),
        "{output}"
    );
    let unanswered = returned(hook_as(
        &yard,
        &credential,
        json!({"hook_event_name": "PreToolUse", "tool_name": "AskUserQuestion",
               "tool_input": {"questions": [{"question": "Which?", "options": [{"label": "a"}, {"label": "b"}]}]}}),
    ))
    .await["hookSpecificOutput"]
        .clone();
    assert_eq!(unanswered["permissionDecision"], "deny");
    assert!(
        unanswered["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .contains("Nobody answered"),
        "{unanswered}"
    );
    assert!(started.elapsed() < Duration::from_secs(6));

    let mcp = yard.mcp_as(&credential).await;
    let result = returned(call_tool(
        &mcp,
        "confirm_action",
        json!({"message": "Deploy?", "timeoutSeconds": 1}),
    ))
    .await;
    assert_eq!(result["outcome"], "timed_out");
    // Bad questions are refused as tool errors, and nothing is stored.
    for bad in [
        json!({"message": "Deploy?", "timeoutSeconds": 0}),
        json!({"message": "Deploy?", "timeoutSeconds": -5}),
        json!({"message": "Deploy?", "timeoutSeconds": 86_401}),
        json!({"message": "x".repeat(1 << 20)}),
    ] {
        let params = rmcp::model::CallToolRequestParams::new("confirm_action")
            .with_arguments(bad.as_object().unwrap().clone());
        let result = mcp.peer().call_tool(params).await.unwrap();
        assert_eq!(result.is_error, Some(true), "{bad}");
    }
    for options in [
        json!([]),
        json!((0..200).map(|i| i.to_string()).collect::<Vec<_>>()),
    ] {
        let params = rmcp::model::CallToolRequestParams::new("select_option").with_arguments(
            json!({"message": "Which?", "options": options})
                .as_object()
                .unwrap()
                .clone(),
        );
        let result = mcp.peer().call_tool(params).await.unwrap();
        assert_eq!(result.is_error, Some(true));
    }
    assert!(list_as(&yard, &yard.token).await.is_empty());
}

#[tokio::test]
async fn ten_concurrent_questions_from_three_agents_each_get_exactly_their_own_answer() {
    let yard = TestYard::start(Options::default()).await;
    let alice = user(&yard, "alice").await;
    let mut agents = Vec::new();
    for repo in ["one", "two", "three"] {
        agents.push(agent_of(&yard, &alice, repo).await);
    }
    let mut client = Answerer::connect(&yard, &alice).await;
    client.next_of("pending").await;
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let (_, credential) = &agents[i % 3];
            hook_as(
                &yard,
                credential,
                json!({"hook_event_name": "PreToolUse", "tool_name": "AskUserQuestion",
                       "tool_input": {"questions": [{"question": format!("q{i}"),
                           "options": [{"label": format!("a{i}")}, {"label": format!("b{i}")}]}]}}),
            )
        })
        .collect();
    let mut asked = Vec::new();
    while asked.len() < 10 {
        asked.push(client.next_of("asked").await["question"].clone());
    }
    // Answered in an order of their own, each with its own second option.
    for question in asked.iter().rev() {
        let i: usize = question["message"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(
            question["agentId"],
            agents[i % 3].0.as_str(),
            "asked by its agent"
        );
        client.answer(question, &format!("b{i}"), None).await;
    }
    for (i, call) in calls.into_iter().enumerate() {
        let output = returned(call).await["hookSpecificOutput"].clone();
        assert_eq!(
            output["updatedInput"]["answers"],
            json!({ format!("q{i}"): format!("b{i}") }),
            "call {i}"
        );
    }
}
