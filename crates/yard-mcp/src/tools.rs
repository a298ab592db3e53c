//! The yard's MCP tools. Their names and input shapes are part of the
//! interface: people's assistant configs name them.
//!
//! Every tool runs in the daemon, on the same services the REST API uses.
//! A tool that fails answers with an MCP tool error (`isError: true`) whose
//! text a person can act on; so does a call with arguments that do not fit
//! the tool's schema (the SDK's router sees to that). Agents (calling with
//! their own credential) see and may call only the agent tools, and those
//! reach only the agent itself and the agents it spawned; a person's token
//! reaches that person's agents (an admin's, all).

use futures::StreamExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, RequestMetaObject,
    ServerCapabilities, ServerConfig,
};
use rmcp::schemars::JsonSchema;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use yard_api::{AgentList, AgentView, DeploymentList, DeploymentView, NameCheck, SpawnResult};
use yard_core::{Actor, AgentId, DeploymentStatus};
use yard_core::{QuestionKind, QuestionOutcome};
use yard_services::orchestrator::SpawnRequest;
use yard_services::{Deployer, NameAvailability, NewQuestion, Orchestrator, Questions};

/// The tools agents may use with their own credential.
const AGENT_TOOLS: [&str; 7] = [
    "spawn_agents",
    "list_agents",
    "agent_status",
    "stop_agent",
    "confirm_action",
    "select_option",
    "request_guidance",
];

/// The tools that ask a person: only an agent asks, so people do not see
/// them.
const QUESTION_TOOLS: [&str; 3] = ["confirm_action", "select_option", "request_guidance"];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub(crate) struct ConfirmInput {
    /// What the person should say yes or no to, in plain words.
    message: String,
    /// How long to wait for an answer, 1 to 86400 seconds; the yard's
    /// default (YARD_QUESTION_TIMEOUT) when absent.
    #[serde(default)]
    timeout_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub(crate) struct SelectInput {
    /// What the person should choose, in plain words.
    message: String,
    /// The choices, 2 to 50, each one line of at most 200 characters.
    options: Vec<String>,
    /// How long to wait for an answer, 1 to 86400 seconds; the yard's
    /// default (YARD_QUESTION_TIMEOUT) when absent.
    #[serde(default)]
    timeout_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub(crate) struct NameInput {
    /// The stack's name: 3 to 20 characters of a-z, 0-9 and '-', not
    /// starting or ending with '-'. It is trimmed and lowercased first.
    name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub(crate) struct DeploymentInput {
    /// The deployment's id, as deploy_stack or list_deployments returned it.
    deployment_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub(crate) struct SpawnInput {
    /// The source git repository: an absolute path on the yard's machine,
    /// inside its repository roots. An agent leaves it out: it may spawn
    /// only on its own repository.
    #[serde(default)]
    repo: Option<String>,
    /// How many agents to start, each on its own branch (1 to the yard's limit).
    count: u32,
    /// What the agents should do, in plain words; each agent gets it as YARD_TASK.
    task: String,
    /// The container image the agents run; the yard's default when absent.
    #[serde(default)]
    image: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub(crate) struct AgentInput {
    /// The agent's 8-character id, as spawn_agents or list_agents returned it.
    id: String,
}

/// One reachability check for `test_api_connections`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionCheck {
    name: String,
    ok: bool,
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The MCP server: one per session, sharing the daemon's services.
#[derive(Debug, Clone)]
pub struct YardTools {
    deployer: Deployer,
    orchestrator: Orchestrator,
    questions: Questions,
    /// The daemon's stop: a call it ends leaves its question pending (the
    /// yard restarts), unlike a call its client cancels.
    stop: CancellationToken,
    tool_router: ToolRouter<Self>,
}

fn ok(value: &impl Serialize) -> CallToolResult {
    CallToolResult::structured(serde_json::to_value(value).unwrap_or_default())
}

fn failed(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// The caller the HTTP layer put on the request; `None` when there is none
/// (a transport that does not authenticate, which the yard never serves).
fn caller(context: &RequestContext<RoleServer>) -> Option<Actor> {
    context
        .extensions
        .get::<http::request::Parts>()?
        .extensions
        .get::<Actor>()
        .cloned()
}

/// The caller, or the tool error for a call without one.
fn actor(context: &RequestContext<RoleServer>) -> Result<Actor, CallToolResult> {
    caller(context).ok_or_else(|| failed("this call carries no credential the yard accepts"))
}

/// `name: type, name?: type` for a tool's input schema.
fn signature(tool: &rmcp::model::Tool) -> String {
    let schema = &tool.input_schema;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
        return String::new();
    };
    properties
        .iter()
        .map(|(field, spec)| {
            let kind = match spec.get("type") {
                Some(serde_json::Value::String(kind)) => kind.clone(),
                Some(serde_json::Value::Array(kinds)) => kinds
                    .iter()
                    .filter_map(|k| k.as_str())
                    .filter(|k| *k != "null")
                    .collect::<Vec<_>>()
                    .join("|"),
                _ => "any".to_owned(),
            };
            let optional = if required.contains(&field.as_str()) {
                ""
            } else {
                "?"
            };
            format!("{field}{optional}: {kind}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The deserializer's complaint, when `result` is the router's answer to
/// arguments that do not fit.
fn argument_error(result: &CallToolResult) -> Option<String> {
    let text = match result.content.first()? {
        ContentBlock::Text(text) => text.text.as_str(),
        _ => return None,
    };
    text.strip_prefix("failed to deserialize parameters: ")
        .map(str::to_owned)
}

fn agent_id(raw: &str) -> Result<AgentId, CallToolResult> {
    AgentId::parse(raw).ok_or_else(|| {
        failed(format!(
            "{raw:?} is not an agent id; agent ids are 8 characters of 0-9 and a-f, as list_agents shows them"
        ))
    })
}

/// The caller and the agent an [`AgentInput`] names, or the tool error.
fn actor_and_agent(
    context: &RequestContext<RoleServer>,
    input: &AgentInput,
) -> Result<(Actor, AgentId), CallToolResult> {
    Ok((actor(context)?, agent_id(&input.id)?))
}

#[tool_router]
impl YardTools {
    pub fn new(
        deployer: Deployer,
        orchestrator: Orchestrator,
        questions: Questions,
        stop: CancellationToken,
    ) -> Self {
        Self {
            deployer,
            orchestrator,
            questions,
            stop,
            tool_router: Self::tool_router(),
        }
    }

    /// Asks a person on behalf of the calling agent and waits for the
    /// outcome, said in words the agent can act on.
    async fn ask_person(
        &self,
        context: &RequestContext<RoleServer>,
        kind: QuestionKind,
        message: String,
        timeout_seconds: Option<i64>,
    ) -> CallToolResult {
        let agent = match caller(context) {
            Some(Actor::Agent(agent)) => agent,
            _ => return failed("only an agent asks a person, with its own credential"),
        };
        let asked = NewQuestion {
            kind,
            message,
            context: None,
            timeout_seconds,
            origin: None,
        };
        let waiting = match self.questions.ask_to_wait(&agent, asked).await {
            Ok(waiting) => waiting,
            Err(e) => return failed(e.to_string()),
        };
        let id = waiting.question().id.clone();
        // The client cancelling its call withdraws the question; the
        // daemon stopping does not (the question waits for the restart).
        let call = context.ct.clone();
        let stop = self.stop.clone();
        let cancelled = async move {
            call.cancelled().await;
            if stop.is_cancelled() {
                std::future::pending::<()>().await;
            }
        };
        match waiting.wait(&self.questions, cancelled).await {
            Ok(outcome) => ok(&answer_for_agent(&id, &outcome)),
            Err(e) => failed(e.to_string()),
        }
    }

    #[tool(
        description = "Deploy a personal agent stack with the given name and wait until it is up. Reports progress (0-100, with the current step) when the call carries a progress token. Returns the deployment's final state, including the stack's URL. Fails with the reason when the name is invalid or taken, or when the deployment fails (it is then rolled back)."
    )]
    async fn deploy_stack(
        &self,
        Parameters(input): Parameters<NameInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let owner = match caller(&context) {
            Some(Actor::Person(person)) => person.owner,
            _ => return failed("deploying a stack needs a person's token"),
        };
        let deployment = match self.deployer.deploy(&input.name, &owner).await {
            Ok(deployment) => deployment,
            Err(e) => return failed(e.to_string()),
        };
        let states = match self.deployer.follow(deployment.id.as_str()).await {
            Ok(Some(states)) => states,
            Ok(None) => return failed("the deployment vanished; see list_deployments"),
            Err(e) => return failed(format!("cannot follow the deployment: {e}")),
        };
        let token = meta.get_progress_token();
        let mut states = std::pin::pin!(states);
        let mut last = deployment;
        let mut reported = None;
        while let Some(state) = states.next().await {
            // Progress only ever rises in MCP; a failure keeps the value it
            // reached, so it is not reported twice (the result says why).
            if let Some(token) = &token
                && reported.is_none_or(|r| state.progress > r)
            {
                reported = Some(state.progress);
                let progress =
                    ProgressNotificationParam::new(token.clone(), f64::from(state.progress))
                        .with_total(100.0)
                        .with_message(state.current_step.clone());
                let _ = peer.notify_progress(progress).await;
            }
            last = state;
        }
        let view = DeploymentView::from(&last);
        match last.status {
            DeploymentStatus::Completed => ok(&view),
            _ => {
                let reason = last
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("it ended as {}", last.status));
                CallToolResult::structured_error(json!({
                    "error": format!("deploying {} failed: {reason}", last.name),
                    "deployment": view,
                }))
            }
        }
    }

    #[tool(
        description = "The current state of one deployment: status (initializing, creating_project, creating_application, deploying, completed, failed, removing, removed), progress 0-100, current step, URL, and the reason if it failed."
    )]
    async fn check_deployment_status(
        &self,
        Parameters(input): Parameters<DeploymentInput>,
    ) -> CallToolResult {
        match self.deployer.deployment(&input.deployment_id).await {
            Ok(Some(d)) => ok(&DeploymentView::from(&d)),
            Ok(None) => failed(format!(
                "there is no deployment with id {:?}; list_deployments shows them",
                input.deployment_id
            )),
            Err(e) => failed(format!("the yard's store does not answer: {e}")),
        }
    }

    #[tool(
        description = "The 100 most recent deployments, newest first, with their status and URL."
    )]
    async fn list_deployments(&self) -> CallToolResult {
        match self.deployer.history(100).await {
            Ok(deployments) => ok(&DeploymentList {
                deployments: deployments.iter().map(DeploymentView::from).collect(),
            }),
            Err(e) => failed(format!("the yard's store does not answer: {e}")),
        }
    }

    #[tool(
        description = "Whether a stack name can be deployed now: `valid` (it follows the naming rules), `available` (valid and not taken), and `error` saying why not."
    )]
    async fn check_name_availability(
        &self,
        Parameters(input): Parameters<NameInput>,
    ) -> CallToolResult {
        let check = match self.deployer.check_name(&input.name).await {
            Ok(NameAvailability::Available(_)) => NameCheck {
                available: true,
                valid: true,
                error: None,
            },
            Ok(NameAvailability::Taken(name)) => NameCheck {
                available: false,
                valid: true,
                error: Some(format!(
                    "the name {name:?} is already taken by another stack"
                )),
            },
            Ok(NameAvailability::Invalid(e)) => NameCheck {
                available: false,
                valid: false,
                error: Some(e.to_string()),
            },
            Err(e) => return failed(e.to_string()),
        };
        ok(&check)
    }

    #[tool(
        description = "Checks that the yard's store and its container engine answer, and how long each took (milliseconds)."
    )]
    async fn test_api_connections(&self) -> CallToolResult {
        let checks: Vec<ConnectionCheck> = self
            .deployer
            .check_connections()
            .await
            .into_iter()
            .map(|check| ConnectionCheck {
                name: check.name,
                ok: check.result.is_ok(),
                latency_ms: check.took.as_secs_f64() * 1e3,
                error: check.result.err(),
            })
            .collect();
        ok(&json!({ "checks": checks }))
    }

    #[tool(
        description = "Puts `count` agents on a task in the git repository `repo` (a path on the yard's machine). Each agent runs in its own container with its own checkout on a new branch yard/<id> from HEAD. Returns the agents; one that could not start has status `failed` and a message."
    )]
    async fn spawn_agents(
        &self,
        Parameters(input): Parameters<SpawnInput>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let by = match actor(&context) {
            Ok(by) => by,
            Err(result) => return result,
        };
        let request = SpawnRequest {
            repo: input.repo.map(Into::into),
            count: input.count,
            task: input.task,
            image: input.image,
            base: None,
        };
        match self.orchestrator.spawn(&by, request).await {
            Ok(agents) => ok(&SpawnResult {
                agents: agents.iter().map(AgentView::from).collect(),
            }),
            Err(e) => failed(e.to_string()),
        }
    }

    #[tool(
        description = "Agents, newest first: id, status (starting, running, exited, failed, stopped, pruned), branch, task and exit code."
    )]
    async fn list_agents(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let by = match actor(&context) {
            Ok(by) => by,
            Err(result) => return result,
        };
        match self.orchestrator.agents(&by, 500).await {
            Ok(agents) => ok(&AgentList {
                agents: agents.iter().map(AgentView::from).collect(),
            }),
            Err(e) => failed(e.to_string()),
        }
    }

    #[tool(
        description = "One agent's state: status, branch, last commit, exit code, and why it failed or stopped."
    )]
    async fn agent_status(
        &self,
        Parameters(input): Parameters<AgentInput>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let (by, id) = match actor_and_agent(&context, &input) {
            Ok(found) => found,
            Err(result) => return result,
        };
        match self.orchestrator.agent(&by, &id).await {
            Ok(agent) => ok(&AgentView::from(&agent)),
            Err(e) => failed(e.to_string()),
        }
    }

    #[tool(
        description = "Asks a person to confirm an action and waits for the answer: yes or no. Waits until a person answers, the deadline passes (timeoutSeconds, or the yard's default) or this agent is stopped; the result's `outcome` says which (answered, timed_out, cancelled) and `answer` is yes or no when answered, with the person's `reason` if they gave one."
    )]
    async fn confirm_action(
        &self,
        Parameters(input): Parameters<ConfirmInput>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.ask_person(
            &context,
            QuestionKind::Confirm,
            input.message,
            input.timeout_seconds,
        )
        .await
    }

    #[tool(
        description = "Asks a person to choose one of `options` and waits for the choice. Waits until a person answers, the deadline passes (timeoutSeconds, or the yard's default) or this agent is stopped; the result's `outcome` says which (answered, timed_out, cancelled) and `answer` is the chosen option when answered."
    )]
    async fn select_option(
        &self,
        Parameters(input): Parameters<SelectInput>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.ask_person(
            &context,
            QuestionKind::Select {
                options: input.options,
            },
            input.message,
            input.timeout_seconds,
        )
        .await
    }

    #[tool(
        description = "Asks a person for guidance in their own words (when stuck, or before a choice the task does not settle) and waits for the reply. Waits until a person answers, the deadline passes (timeoutSeconds, or the yard's default) or this agent is stopped; the result's `outcome` says which (answered, timed_out, cancelled) and `answer` is the person's text when answered."
    )]
    async fn request_guidance(
        &self,
        Parameters(input): Parameters<ConfirmInput>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.ask_person(
            &context,
            QuestionKind::Text,
            input.message,
            input.timeout_seconds,
        )
        .await
    }

    #[tool(
        description = "Stops an agent and removes its container. Its branch and checkout stay for review. Returns the agent's new state."
    )]
    async fn stop_agent(
        &self,
        Parameters(input): Parameters<AgentInput>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let (by, id) = match actor_and_agent(&context, &input) {
            Ok(found) => found,
            Err(result) => return result,
        };
        match self.orchestrator.stop(&by, &id).await {
            Ok(agent) => ok(&AgentView::from(&agent)),
            Err(e) => failed(e.to_string()),
        }
    }
}

/// The result of a question tool: how it ended, in fields and in words.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AnswerForAgent {
    question_id: String,
    /// `answered`, `timed_out` or `cancelled`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The same, as one sentence.
    summary: String,
}

fn answer_for_agent(id: &str, outcome: &QuestionOutcome) -> AnswerForAgent {
    let (answer, answered_by, reason, summary) = match outcome {
        QuestionOutcome::Answered { answer, by, reason } => {
            let summary = match reason {
                Some(reason) => format!("{by} answered: {answer} ({reason})"),
                None => format!("{by} answered: {answer}"),
            };
            (
                Some(answer.clone()),
                Some(by.clone()),
                reason.clone(),
                summary,
            )
        }
        QuestionOutcome::TimedOut => (
            None,
            None,
            None,
            "Nobody answered in time. No person is available now: decide without the answer, or ask again later.".to_owned(),
        ),
        QuestionOutcome::Cancelled | QuestionOutcome::Pending => (
            None,
            None,
            None,
            "The question was cancelled: this agent is being stopped.".to_owned(),
        ),
    };
    AnswerForAgent {
        question_id: id.to_owned(),
        outcome: outcome.as_str(),
        answer,
        answered_by,
        reason,
        summary,
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for YardTools {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("agentyard", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(
            "Tools of an agentyard: deploy personal agent stacks (deploy_stack, check_name_availability, check_deployment_status, list_deployments), check the yard (test_api_connections), and put coding agents on tasks (spawn_agents, list_agents, agent_status, stop_agent), and, for agents, ask a person (confirm_action, select_option, request_guidance)."
                .to_owned(),
        );
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.tool_router.list_all();
        if matches!(caller(&context), Some(Actor::Person(_))) {
            tools.retain(|t| !QUESTION_TOOLS.contains(&t.name.as_ref()));
        } else {
            tools.retain(|t| AGENT_TOOLS.contains(&t.name.as_ref()));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        match caller(&context) {
            Some(Actor::Person(_)) if QUESTION_TOOLS.contains(&name.as_str()) => {
                return Ok(failed(format!(
                    "{name} is for agents: only an agent asks a person, with its own credential"
                ))
                .into());
            }
            Some(Actor::Person(_)) => {}
            Some(Actor::Agent(_)) if AGENT_TOOLS.contains(&name.as_str()) => {}
            Some(Actor::Agent(_)) => {
                return Ok(failed(format!(
                    "{name} is not open to agents; agents may use {}",
                    AGENT_TOOLS.join(", ")
                ))
                .into());
            }
            None => return Ok(failed("this call carries no credential the yard accepts").into()),
        }
        let signature = self.tool_router.get(&name).map(signature);
        let response = self
            .tool_router
            .call(ToolCallContext::new(self, request, context))
            .await?;
        // Arguments that do not fit the schema come back from the router as
        // a tool error with serde's words only; name what the tool takes.
        Ok(match (response, signature) {
            (CallToolResponse::Complete(result), Some(signature))
                if result.is_error == Some(true) =>
            {
                match argument_error(&result) {
                    Some(detail) => failed(format!(
                        "the arguments do not fit {name}({signature}): {detail}"
                    ))
                    .into(),
                    None => result.into(),
                }
            }
            (response, _) => response,
        })
    }
}
