//! A fake Dokploy, for testing the yard's `dokploy` backend without one: a
//! small stateful HTTP server on an ephemeral loopback port that answers
//! the procedures the backend calls, the way Dokploy does.
//!
//! It is a contract fake. Every request is checked against Dokploy's own
//! OpenAPI document (vendored unmodified in `specs/dokploy-openapi.json`):
//! the operation and its method must exist, a query's parameters and a
//! mutation's JSON body must match the request schema, with no field the
//! document does not know (Dokploy's zod would drop it silently). A request
//! that breaks the document is answered 400 with Dokploy's `BAD_REQUEST`
//! shape, so the client sees it, and recorded: [`DokployFake::violations`]
//! lists them, [`DokployFake::assert_clean`] fails on them, and dropping a
//! fake that recorded some fails the test. The fake's own error answers
//! are checked against the document's `error.*` schemas too; its success
//! answers follow what Dokploy's procedures return (its rows in camelCase
//! with their relations), since the document gives no response schemas.
//!
//! What the document leaves out, the fake does as Dokploy does: the key
//! goes in `x-api-key` (the global `security`; operations name an
//! `Authorization` scheme the document does not define), and an unknown id
//! is a 404 with the `NOT_FOUND` shape even on operations whose documented
//! answers omit 404, because that is what tRPC makes of Dokploy's
//! `NOT_FOUND` errors.
//!
//! Faults on demand: [`DokployFake::fail_next`] (an error status),
//! [`DokployFake::wrong_shape_next`] (a success in a shape Dokploy never
//! answers), [`DokployFake::fail_next_deploy`] and
//! [`DokployFake::deploy_takes`]. And like Dokploy's Traefik, the fake
//! serves every domain it holds on the same port, chosen by `Host`: `200
//! stack <name>` once its application is deployed, 503 before.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

mod pattern;
mod schema;

pub use schema::SchemaValidator;

/// Dokploy's OpenAPI document, as Dokploy publishes it.
const DOCUMENT: &str = include_str!("../specs/dokploy-openapi.json");

/// Dokploy's OpenAPI document, parsed once per test process.
pub fn dokploy_openapi() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED
        .get_or_init(|| serde_json::from_str(DOCUMENT).expect("specs/dokploy-openapi.json is JSON"))
}

/// A project in the fake, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeProject {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
}

/// An application in the fake, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeApplication {
    pub id: String,
    pub name: String,
    /// Dokploy's service name: the requested `appName` and a suffix.
    pub app_name: String,
    pub project_id: String,
    pub docker_image: Option<String>,
    pub env: Option<String>,
    /// `idle`, `running`, `done` or `error`.
    pub status: String,
    pub memory_limit: Option<String>,
    pub cpu_limit: Option<String>,
    pub deployments: usize,
}

/// A domain in the fake, as a test sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDomain {
    pub id: String,
    pub host: String,
    pub port: Option<f64>,
    pub https: bool,
    pub certificate_type: String,
    pub application_id: Option<String>,
}

/// A fake Dokploy serving on loopback until dropped.
#[derive(Debug)]
pub struct DokployFake {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    key: String,
    state: Mutex<FakeState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
enum Fault {
    Status(u16),
    WrongShape,
}

#[derive(Debug, Default)]
struct FakeState {
    projects: Vec<Value>,
    environments: Vec<Value>,
    applications: Vec<AppRecord>,
    domains: Vec<Value>,
    faults: Vec<(String, Fault)>,
    /// How many looks at an application a deployment takes.
    deploy_polls: u32,
    /// The next deployments end in an error with this message.
    deploy_failures: VecDeque<String>,
    violations: Vec<String>,
    calls: Vec<String>,
    serial: u64,
}

#[derive(Debug)]
struct AppRecord {
    row: Value,
    deployments: Vec<Value>,
    pending: Option<Pending>,
}

/// A deployment under way.
#[derive(Debug)]
struct Pending {
    /// Looks before Dokploy's queue starts it: until then the application
    /// shows its last deployment's status, and no new deployment.
    queued: u32,
    looks_left: u32,
    failure: Option<String>,
    deployment_id: Option<String>,
}

/// What the fake answers: a status and a JSON body.
type Answer = (StatusCode, Value);

impl DokployFake {
    /// Starts a fake with an empty Dokploy (no projects), whose API key is
    /// [`DokployFake::api_key`] and whose deployments take two looks.
    pub async fn start() -> Self {
        let key = format!("fake-{}", uuid::Uuid::new_v4().simple());
        let shared = Arc::new(Shared {
            key,
            state: Mutex::new(FakeState {
                deploy_polls: 2,
                ..FakeState::default()
            }),
        });
        // Parse the document before the first request needs it.
        let _ = dokploy_openapi();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Dokploy");
        let addr = listener.local_addr().expect("the fake Dokploy's address");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            shared,
            addr,
            server,
        }
    }

    /// The fake's address, what `DOKPLOY_URL` would be.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `host:port` of the fake, which also plays Dokploy's Traefik.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// The API key the fake takes.
    pub fn api_key(&self) -> String {
        self.shared.key.clone()
    }

    /// Every way a request broke Dokploy's document so far.
    pub fn violations(&self) -> Vec<String> {
        self.shared.state().violations.clone()
    }

    /// The violations so far, forgotten: for a test that broke the
    /// document on purpose.
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.state().violations)
    }

    /// Fails the test if any request broke Dokploy's document.
    pub fn assert_clean(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "requests broke Dokploy's OpenAPI document:\n{}",
            violations.join("\n")
        );
    }

    /// The next call of `operation` (e.g. `application.create`) answers
    /// `status` with Dokploy's error shape for it, and changes nothing.
    pub fn fail_next(&self, operation: &str, status: u16) {
        self.shared
            .state()
            .faults
            .push((operation.to_owned(), Fault::Status(status)));
    }

    /// The next call of `operation` answers 200 with a body in a shape
    /// Dokploy never answers, and changes nothing.
    pub fn wrong_shape_next(&self, operation: &str) {
        self.shared
            .state()
            .faults
            .push((operation.to_owned(), Fault::WrongShape));
    }

    /// Deployments take `looks` looks at their application
    /// (`application.one`) to finish, after one look while queued.
    pub fn deploy_takes(&self, looks: u32) {
        self.shared.state().deploy_polls = looks.max(1);
    }

    /// The next deployment ends in `error`, with `message` as its reason.
    pub fn fail_next_deploy(&self, message: &str) {
        self.shared
            .state()
            .deploy_failures
            .push_back(message.to_owned());
    }

    /// Sets an application's `applicationStatus`, as a stop (`idle`) or a
    /// failed deployment (`error`) in Dokploy's dashboard would.
    pub fn set_status(&self, application_name: &str, status: &str) {
        let mut state = self.shared.state();
        for app in &mut state.applications {
            if app.row["name"] == application_name {
                app.row["applicationStatus"] = json!(status);
            }
        }
    }

    /// Makes a project the way a person would in the dashboard.
    pub fn add_project(&self, name: &str, description: Option<&str>) -> String {
        let mut state = self.shared.state();
        let (project, _) = state.create_project(name, description);
        project["projectId"].as_str().unwrap_or_default().to_owned()
    }

    /// How many times `operation` was called (answered or not).
    pub fn calls(&self, operation: &str) -> usize {
        self.shared
            .state()
            .calls
            .iter()
            .filter(|c| *c == operation)
            .count()
    }

    pub fn projects(&self) -> Vec<FakeProject> {
        self.shared
            .state()
            .projects
            .iter()
            .map(|p| FakeProject {
                id: text(&p["projectId"]),
                name: text(&p["name"]),
                description: p["description"].as_str().map(str::to_owned),
            })
            .collect()
    }

    pub fn applications(&self) -> Vec<FakeApplication> {
        let state = self.shared.state();
        state
            .applications
            .iter()
            .map(|a| {
                let row = &a.row;
                FakeApplication {
                    id: text(&row["applicationId"]),
                    name: text(&row["name"]),
                    app_name: text(&row["appName"]),
                    project_id: state
                        .environment(row["environmentId"].as_str().unwrap_or_default())
                        .map(|e| text(&e["projectId"]))
                        .unwrap_or_default(),
                    docker_image: row["dockerImage"].as_str().map(str::to_owned),
                    env: row["env"].as_str().map(str::to_owned),
                    status: text(&row["applicationStatus"]),
                    memory_limit: row["memoryLimit"].as_str().map(str::to_owned),
                    cpu_limit: row["cpuLimit"].as_str().map(str::to_owned),
                    deployments: a.deployments.len(),
                }
            })
            .collect()
    }

    pub fn domains(&self) -> Vec<FakeDomain> {
        self.shared
            .state()
            .domains
            .iter()
            .map(|d| FakeDomain {
                id: text(&d["domainId"]),
                host: text(&d["host"]),
                port: d["port"].as_f64(),
                https: d["https"].as_bool().unwrap_or_default(),
                certificate_type: text(&d["certificateType"]),
                application_id: d["applicationId"].as_str().map(str::to_owned),
            })
            .collect()
    }
}

impl Drop for DokployFake {
    fn drop(&mut self) {
        self.server.abort();
        let violations = self.violations();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "requests broke Dokploy's OpenAPI document:\n{}",
                violations.join("\n")
            );
        }
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// Every request: a stack domain's by `Host`, the rest the API's.
async fn handle(
    Extract(shared): Extract<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, _)| name)
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if let Some(answer) = shared.state().serve_stack(&host) {
        return answer;
    }
    let Some(operation) = uri.path().strip_prefix("/api/") else {
        return (StatusCode::NOT_FOUND, "404 page not found").into_response();
    };
    let (status, body) = api(&shared, operation, &method, &uri, &headers, &body);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Dokploy's error shape for `status`.
fn error(status: u16, message: &str) -> Answer {
    let code = match status {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        _ => "INTERNAL_SERVER_ERROR",
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        json!({ "message": message, "code": code, "issues": [] }),
    )
}

fn not_found(what: &str) -> Answer {
    error(404, &format!("{what} not found"))
}

/// One API call, checked against the document before and after.
fn api(
    shared: &Shared,
    operation: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let document = dokploy_openapi();
    let mut state = shared.state();
    state.calls.push(operation.to_owned());
    let Some(described) = document["paths"].get(format!("/{operation}")) else {
        state.violations.push(format!(
            "{operation}: no such operation in Dokploy's document"
        ));
        return error(404, &format!("No procedure found on path \"{operation}\""));
    };
    let verb = method.as_str().to_ascii_lowercase();
    let Some(spec) = described.get(&verb) else {
        state.violations.push(format!(
            "{operation}: Dokploy's document has no {method} for it"
        ));
        return error(400, &format!("Method {method} is not allowed"));
    };
    let key = headers.get("x-api-key").and_then(|k| k.to_str().ok());
    if key != Some(shared.key.as_str()) {
        return error(401, "Authorization not provided");
    }
    let input = match check_request(document, spec, uri, headers, body) {
        Ok(input) => input,
        Err(problems) => {
            let issues: Vec<Value> = problems.iter().map(|p| json!({ "message": p })).collect();
            state
                .violations
                .extend(problems.iter().map(|p| format!("{operation}: {p}")));
            return (
                StatusCode::BAD_REQUEST,
                json!({ "message": "Input validation failed", "code": "BAD_REQUEST", "issues": issues }),
            );
        }
    };
    if let Some(at) = state.faults.iter().position(|(op, _)| op == operation) {
        let (_, fault) = state.faults.remove(at);
        return match fault {
            Fault::Status(status) => error(status, "injected by the test"),
            Fault::WrongShape => (
                StatusCode::OK,
                json!({ "surprise": "not a shape Dokploy answers" }),
            ),
        };
    }
    let answer = state.call(operation, &input);
    // The fake's own answers must follow the document too.
    if let Some(problems) = check_response(document, spec, &answer) {
        state.violations.extend(
            problems
                .into_iter()
                .map(|p| format!("{operation}: the fake's own {} answer: {p}", answer.0)),
        );
    }
    answer
}

/// The input of a call (query parameters as an object, or the JSON body),
/// or every way the request breaks the document.
fn check_request(
    document: &Value,
    spec: &Value,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Vec<String>> {
    let validator = SchemaValidator::new(document).closed(true);
    let mut problems = Vec::new();
    let mut input = serde_json::Map::new();

    let parameters: Vec<&Value> = spec["parameters"]
        .as_array()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let query = uri.query().unwrap_or_default();
    let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("http://fake/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    for (name, raw) in &pairs {
        let Some(parameter) = parameters
            .iter()
            .find(|p| p["in"] == "query" && p["name"] == name.as_str())
        else {
            problems.push(format!("query parameter {name:?} is not in the document"));
            continue;
        };
        if input.contains_key(name) {
            problems.push(format!("query parameter {name:?} is given twice"));
            continue;
        }
        // A query carries text; where the schema wants a number or a
        // boolean, the text is read as JSON first.
        let as_text = Value::String(raw.clone());
        let value = if validator
            .validate(&parameter["schema"], &as_text)
            .is_empty()
        {
            as_text
        } else {
            serde_json::from_str(raw).unwrap_or(as_text)
        };
        problems.extend(
            validator
                .validate(&parameter["schema"], &value)
                .into_iter()
                .map(|p| format!("query parameter {name}: {p}")),
        );
        input.insert(name.clone(), value);
    }
    for parameter in &parameters {
        let name = parameter["name"].as_str().unwrap_or_default();
        match parameter["in"].as_str() {
            Some("query") => {
                if parameter["required"] == true && !input.contains_key(name) {
                    problems.push(format!("query parameter {name:?} is required but missing"));
                }
            }
            other => problems.push(format!(
                "the fake does not check {other:?} parameters ({name})"
            )),
        }
    }

    match spec.get("requestBody") {
        None if body.is_empty() => {}
        None => problems.push("a body where the document describes none".to_owned()),
        Some(described) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|c| c.to_str().ok())
                .unwrap_or_default();
            let schema = &described["content"]["application/json"]["schema"];
            if !content_type.starts_with("application/json") {
                problems.push(format!(
                    "content type {content_type:?}, where the document describes application/json"
                ));
            } else if body.is_empty() {
                if described["required"] == true {
                    problems.push("no body, where the document requires one".to_owned());
                }
            } else {
                match serde_json::from_slice::<Value>(body) {
                    Ok(value) => {
                        problems.extend(validator.validate(schema, &value));
                        if let Value::Object(fields) = value {
                            input.extend(fields);
                        }
                    }
                    Err(e) => problems.push(format!("the body is not JSON: {e}")),
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(Value::Object(input))
    } else {
        Err(problems)
    }
}

/// How the fake's answer breaks the document's response schema, if it
/// does. The document's success schemas are all an empty-object
/// placeholder (Dokploy's generator knows no output types), so only
/// answers with a real schema (the errors) are checked.
fn check_response(document: &Value, spec: &Value, (status, body): &Answer) -> Option<Vec<String>> {
    let described = &spec["responses"][status.as_str()]["content"]["application/json"]["schema"];
    let schema = if described.is_null() && !status.is_success() {
        // An error the operation's answers leave out (a 404 on a
        // mutation): the error schema of its code still applies.
        let code = body["code"].as_str()?;
        document["components"]["schemas"].get(format!("error.{code}"))?
    } else {
        described
    };
    if schema.is_null() || is_placeholder(schema) {
        return None;
    }
    let problems = SchemaValidator::new(document).validate(schema, body);
    (!problems.is_empty()).then_some(problems)
}

/// `{"type":"object","properties":{},"additionalProperties":false}`.
fn is_placeholder(schema: &Value) -> bool {
    schema["type"] == "object"
        && schema["properties"]
            .as_object()
            .is_some_and(serde_json::Map::is_empty)
        && schema.get("$ref").is_none()
}

impl FakeState {
    fn next_id(&mut self) -> String {
        self.serial += 1;
        // Dokploy's ids are 21-character nanoids.
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!("{}{:05}", &random[..16], self.serial % 100_000)
    }

    /// A timestamp later than every earlier one, as Dokploy's ISO strings.
    fn now(&mut self) -> String {
        self.serial += 1;
        let s = self.serial;
        format!(
            "2025-01-01T{:02}:{:02}:{:02}.000Z",
            (s / 3600) % 24,
            (s / 60) % 60,
            s % 60
        )
    }

    fn environment(&self, id: &str) -> Option<&Value> {
        self.environments.iter().find(|e| e["environmentId"] == id)
    }

    fn project(&self, id: &str) -> Option<&Value> {
        self.projects.iter().find(|p| p["projectId"] == id)
    }

    fn app_index(&self, id: &str) -> Option<usize> {
        self.applications
            .iter()
            .position(|a| a.row["applicationId"] == id)
    }

    fn create_project(&mut self, name: &str, description: Option<&str>) -> (Value, Value) {
        let project_id = self.next_id();
        let environment_id = self.next_id();
        let created_at = self.now();
        let project = json!({
            "projectId": project_id,
            "name": name,
            "description": description,
            "createdAt": created_at,
            "organizationId": "fake-organization",
            "env": "",
        });
        let environment = json!({
            "environmentId": environment_id,
            "name": "production",
            "description": "Production environment",
            "createdAt": created_at,
            "env": "",
            "projectId": project_id,
            "isDefault": true,
        });
        self.projects.push(project.clone());
        self.environments.push(environment.clone());
        (project, environment)
    }

    /// A domain's answer, when `host` is one the fake holds.
    fn serve_stack(&self, host: &str) -> Option<Response> {
        let domain = self.domains.iter().find(|d| {
            d["host"]
                .as_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(host))
        })?;
        let app = self
            .applications
            .iter()
            .find(|a| a.row["applicationId"] == domain["applicationId"]);
        Some(match app {
            Some(app)
                if matches!(
                    app.row["applicationStatus"].as_str(),
                    Some("done" | "running")
                ) =>
            {
                (StatusCode::OK, format!("stack {}", text(&app.row["name"]))).into_response()
            }
            _ => (StatusCode::SERVICE_UNAVAILABLE, "no available server").into_response(),
        })
    }

    /// What `application.one` answers: the row with its relations.
    fn application_view(&self, index: usize) -> Value {
        let app = &self.applications[index];
        let mut view = app.row.clone();
        let id = &app.row["applicationId"];
        let environment = self
            .environment(app.row["environmentId"].as_str().unwrap_or_default())
            .cloned()
            .map(|mut e| {
                let project = self
                    .project(e["projectId"].as_str().unwrap_or_default())
                    .cloned();
                e["project"] = project.unwrap_or(Value::Null);
                e
            });
        view["environment"] = environment.unwrap_or(Value::Null);
        view["domains"] = json!(
            self.domains
                .iter()
                .filter(|d| d["applicationId"] == *id)
                .collect::<Vec<_>>()
        );
        view["deployments"] = json!(app.deployments);
        for empty in [
            "mounts",
            "redirects",
            "security",
            "ports",
            "previewDeployments",
        ] {
            view[empty] = json!([]);
        }
        for none in [
            "gitlab",
            "github",
            "bitbucket",
            "gitea",
            "server",
            "registry",
            "buildRegistry",
            "rollbackRegistry",
        ] {
            view[none] = Value::Null;
        }
        view
    }

    /// One look at an application moves its deployment along.
    fn advance(&mut self, index: usize) {
        if self
            .applications
            .get(index)
            .is_none_or(|a| a.pending.is_none())
        {
            return;
        }
        let now = self.now();
        let id = self.next_id();
        let app = &mut self.applications[index];
        let Some(pending) = app.pending.as_mut() else {
            return;
        };
        if pending.queued > 0 {
            pending.queued -= 1;
            return;
        }
        // Dokploy's queue starts the deployment: it appears, running.
        if pending.deployment_id.is_none() {
            pending.deployment_id = Some(id.clone());
            app.deployments.push(json!({
                "deploymentId": id,
                "title": "agentyard",
                "description": null,
                "status": "running",
                "logPath": format!("/etc/dokploy/logs/{}/{id}.log", text(&app.row["appName"])),
                "applicationId": app.row["applicationId"],
                "createdAt": now,
                "startedAt": now,
                "finishedAt": null,
                "errorMessage": null,
            }));
            app.row["applicationStatus"] = json!("running");
        }
        pending.looks_left = pending.looks_left.saturating_sub(1);
        if pending.looks_left > 0 {
            return;
        }
        let (status, message) = match pending.failure.take() {
            Some(message) => ("error", Value::String(message)),
            None => ("done", Value::Null),
        };
        let deployment_id = pending.deployment_id.take();
        app.pending = None;
        app.row["applicationStatus"] = json!(status);
        if let Some(deployment) = app
            .deployments
            .iter_mut()
            .find(|d| d["deploymentId"].as_str() == deployment_id.as_deref())
        {
            deployment["status"] = json!(status);
            deployment["finishedAt"] = json!(now);
            deployment["errorMessage"] = message;
        }
    }

    /// Dokploy's answer to a valid call.
    fn call(&mut self, operation: &str, input: &Value) -> Answer {
        let field = |name: &str| input[name].as_str().unwrap_or_default().to_owned();
        let ok = |body: Value| (StatusCode::OK, body);
        match operation {
            "project.all" => {
                let mut projects: Vec<Value> = self
                    .projects
                    .iter()
                    .map(|p| self.project_listing(p))
                    .collect();
                projects.sort_by(|a, b| b["createdAt"].as_str().cmp(&a["createdAt"].as_str()));
                ok(json!(projects))
            }
            "project.one" => match self.project(&field("projectId")) {
                Some(project) => ok(self.project_listing(project)),
                None => not_found("Project"),
            },
            "project.create" => {
                let description = input["description"].as_str().map(str::to_owned);
                let (project, environment) =
                    self.create_project(&field("name"), description.as_deref());
                ok(json!({ "project": project, "environment": environment }))
            }
            "project.remove" => {
                let id = field("projectId");
                let Some(at) = self.projects.iter().position(|p| p["projectId"] == id) else {
                    return not_found("Project");
                };
                let project = self.projects.remove(at);
                // The database cascades: environments, their applications
                // and those applications' domains go with the project.
                let environments: Vec<Value> = self
                    .environments
                    .iter()
                    .filter(|e| e["projectId"] == id)
                    .map(|e| e["environmentId"].clone())
                    .collect();
                self.environments.retain(|e| e["projectId"] != id);
                let gone: Vec<Value> = self
                    .applications
                    .iter()
                    .filter(|a| environments.contains(&a.row["environmentId"]))
                    .map(|a| a.row["applicationId"].clone())
                    .collect();
                self.applications
                    .retain(|a| !gone.contains(&a.row["applicationId"]));
                self.domains.retain(|d| !gone.contains(&d["applicationId"]));
                ok(project)
            }
            "application.create" => {
                let environment_id = field("environmentId");
                if self.environment(&environment_id).is_none() {
                    return not_found("Environment");
                }
                let id = self.next_id();
                let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
                let app_name = input["appName"]
                    .as_str()
                    .map_or_else(|| format!("app-{suffix}"), |a| format!("{a}-{suffix}"));
                let created_at = self.now();
                let row = json!({
                    "applicationId": id,
                    "name": field("name"),
                    "appName": app_name,
                    "description": input["description"],
                    "env": null,
                    "buildArgs": null,
                    "buildSecrets": null,
                    "createEnvFile": true,
                    "memoryReservation": null,
                    "memoryLimit": null,
                    "cpuReservation": null,
                    "cpuLimit": null,
                    "title": null,
                    "enabled": null,
                    "subtitle": null,
                    "command": null,
                    "args": null,
                    "refreshToken": self.next_id(),
                    "sourceType": "github",
                    "cleanCache": false,
                    "dockerImage": null,
                    "username": null,
                    "password": null,
                    "registryUrl": null,
                    "applicationStatus": "idle",
                    "buildType": "nixpacks",
                    "replicas": 1,
                    "autoDeploy": true,
                    "createdAt": created_at,
                    "registryId": null,
                    "environmentId": environment_id,
                    "serverId": input.get("serverId").cloned().unwrap_or(Value::Null),
                });
                self.applications.push(AppRecord {
                    row: row.clone(),
                    deployments: Vec::new(),
                    pending: None,
                });
                ok(row)
            }
            "application.one" => {
                let Some(index) = self.app_index(&field("applicationId")) else {
                    return not_found("Application");
                };
                self.advance(index);
                ok(self.application_view(index))
            }
            "application.saveDockerProvider"
            | "application.saveEnvironment"
            | "application.update" => {
                let Some(index) = self.app_index(&field("applicationId")) else {
                    return not_found("Application");
                };
                let row = &mut self.applications[index].row;
                for (name, value) in input.as_object().into_iter().flatten() {
                    if name != "applicationId" {
                        row[name.as_str()] = value.clone();
                    }
                }
                if operation == "application.saveDockerProvider" {
                    row["sourceType"] = json!("docker");
                }
                ok(json!(true))
            }
            "application.deploy" => {
                let Some(index) = self.app_index(&field("applicationId")) else {
                    return not_found("Application");
                };
                let looks_left = self.deploy_polls;
                let failure = self.deploy_failures.pop_front();
                // Queued: nothing shows until the queue starts it.
                self.applications[index].pending = Some(Pending {
                    queued: 1,
                    looks_left,
                    failure,
                    deployment_id: None,
                });
                ok(json!(true))
            }
            "application.delete" => {
                let id = field("applicationId");
                let Some(index) = self.app_index(&id) else {
                    return not_found("Application");
                };
                let app = self.applications.remove(index);
                self.domains.retain(|d| d["applicationId"] != id);
                ok(app.row)
            }
            "domain.create" => {
                if let Some(app) = input["applicationId"].as_str()
                    && self.app_index(app).is_none()
                {
                    return not_found("Application");
                }
                let id = self.next_id();
                let created_at = self.now();
                let mut domain = json!({
                    "domainId": id,
                    "host": field("host"),
                    "https": false,
                    "port": 3000,
                    "path": "/",
                    "serviceName": null,
                    "domainType": "application",
                    "uniqueConfigKey": self.serial,
                    "createdAt": created_at,
                    "composeId": null,
                    "customCertResolver": null,
                    "applicationId": null,
                    "previewDeploymentId": null,
                    "certificateType": "none",
                    "internalPath": "/",
                    "stripPath": false,
                    "customEntrypoint": null,
                    "middlewares": null,
                    "forwardAuthEnabled": false,
                });
                for (name, value) in input.as_object().into_iter().flatten() {
                    domain[name.as_str()] = value.clone();
                }
                self.domains.push(domain.clone());
                ok(domain)
            }
            "domain.byApplicationId" => {
                let id = field("applicationId");
                if self.app_index(&id).is_none() {
                    return not_found("Application");
                }
                let domains: Vec<&Value> = self
                    .domains
                    .iter()
                    .filter(|d| d["applicationId"] == id)
                    .collect();
                ok(json!(domains))
            }
            "domain.delete" => {
                let id = field("domainId");
                let Some(at) = self.domains.iter().position(|d| d["domainId"] == id) else {
                    return not_found("Domain");
                };
                ok(self.domains.remove(at))
            }
            other => error(
                500,
                &format!("the fake Dokploy does not implement {other}; add it to the test kit"),
            ),
        }
    }

    /// A project as `project.all` lists it: its row, its environments and
    /// their services (applications with id, name and status).
    fn project_listing(&self, project: &Value) -> Value {
        let mut listing = project.clone();
        let environments: Vec<Value> = self
            .environments
            .iter()
            .filter(|e| e["projectId"] == project["projectId"])
            .map(|e| {
                let applications: Vec<Value> = self
                    .applications
                    .iter()
                    .filter(|a| a.row["environmentId"] == e["environmentId"])
                    .map(|a| {
                        json!({
                            "applicationId": a.row["applicationId"],
                            "name": a.row["name"],
                            "applicationStatus": a.row["applicationStatus"],
                        })
                    })
                    .collect();
                json!({
                    "name": e["name"],
                    "environmentId": e["environmentId"],
                    "isDefault": e["isDefault"],
                    "applications": applications,
                    "mariadb": [],
                    "mongo": [],
                    "mysql": [],
                    "postgres": [],
                    "redis": [],
                    "compose": [],
                    "libsql": [],
                })
            })
            .collect();
        listing["environments"] = json!(environments);
        listing["projectTags"] = json!([]);
        listing
    }
}
