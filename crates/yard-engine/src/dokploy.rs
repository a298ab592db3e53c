//! The `dokploy` backend: stacks deployed through a Dokploy's public API.
//!
//! A stack is one Dokploy project named `agentyard-<instance>-<stack>`, in
//! its default environment one application of the same name (a Docker image
//! run as a Swarm service, with the stack's environment and limits), and on
//! that application one domain, `<stack>.<domain>`, which Dokploy's Traefik
//! serves. The yard reaches a stack through that domain (or through
//! [`DokployConfig::traefik`] with the domain as `Host`).
//!
//! Dokploy objects carry no labels, so the yard marks what it makes in the
//! one free-text field they have: the description of projects and
//! applications holds the same `agentyard.*=…` lines the Docker backend
//! puts in labels. Every step looks its object up by name first and adopts
//! it only when that mark says it is this instance's; a same-named object
//! without it is refused as foreign. So a step interrupted by a crash,
//! repeated, makes nothing twice, and nothing a person made by hand is ever
//! adopted or removed.
//!
//! Dokploy has no event feed: [`Engine::stack_events`] never yields, and the
//! deployer's periodic look ([`Engine::stack_states`], one `project.all`)
//! is what notices a stack that failed or was stopped in Dokploy.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::time::Instant;
use yard_core::StackName;

mod api;
mod wire;

use self::api::{Api, unless_gone};
use self::wire::{
    Application, ApplicationId, ApplicationSummary, CreateApplication, CreateDomain, CreateProject,
    CreatedProject, Deploy, Deployment, Project, ProjectId, SaveDockerProvider, SaveEnvironment,
    Status, UpdateLimits,
};
use crate::{
    Endpoint, Engine, EngineError, LABEL_INSTANCE, LABEL_MANAGED, LABEL_STACK, ResourceKind,
    StackEvent, StackResource, StackSpec, StackState,
};

/// The port a stack's domain leads to when the spec names none: Dokploy
/// does not look inside images, so it cannot find the exposed one.
const DEFAULT_PORT: u16 = 80;

/// How long Dokploy lets a Docker service name be; it appends a dash and
/// six characters of its own to the `appName` the yard gives.
const SERVICE_NAME_MAX: usize = 63;
const APP_NAME_SUFFIX: usize = 7;

/// The certificate Dokploy's Traefik serves a stack's domain with
/// (`certificateType` in Dokploy's API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateType {
    /// One from Let's Encrypt per stack domain (Traefik's resolver).
    #[default]
    LetsEncrypt,
    /// Traefik's default certificate (a wildcard one set up in Traefik, or
    /// its self-signed one).
    None,
    /// A certificate uploaded to Dokploy.
    Custom,
}

impl CertificateType {
    /// As Dokploy spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LetsEncrypt => "letsencrypt",
            Self::None => "none",
            Self::Custom => "custom",
        }
    }
}

impl fmt::Display for CertificateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CertificateType {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "letsencrypt" => Ok(Self::LetsEncrypt),
            "none" => Ok(Self::None),
            "custom" => Ok(Self::Custom),
            _ => Err(format!(
                "{raw:?} is not a Dokploy certificate type; use letsencrypt, none or custom"
            )),
        }
    }
}

/// How the dokploy backend reaches Dokploy and names what it makes.
#[derive(Clone)]
pub struct DokployConfig {
    /// Dokploy's address (`DOKPLOY_URL`), e.g. `https://dokploy.example.com`;
    /// a trailing `/api` is allowed.
    pub url: String,
    /// An API key made under Settings > API Keys (`DOKPLOY_API_KEY`). Never
    /// logged, and left out of this type's debug output.
    pub api_key: String,
    /// The yard instance id, in every object's name and mark.
    pub instance: String,
    /// Stacks are served at `<stack>.<domain>`: a domain whose names lead
    /// to Dokploy's Traefik (a wildcard DNS record).
    pub domain: String,
    /// Whether Traefik serves stack domains over HTTPS.
    pub https: bool,
    /// The certificate for HTTPS stack domains.
    pub certificate: CertificateType,
    /// The Dokploy server (a remote one) stacks run on; `None` for
    /// Dokploy's own.
    pub server_id: Option<String>,
    /// Where the yard connects to reach stacks (`host:port` of Dokploy's
    /// Traefik), sending the stack's domain as `Host`; `None` connects to
    /// the domain itself. For setups where the stack domains do not resolve
    /// from the yard, and for tests.
    pub traefik: Option<String>,
    /// How often a deployment's progress is looked at.
    pub poll_interval: Duration,
}

impl DokployConfig {
    /// HTTPS with Let's Encrypt certificates, on Dokploy's own server,
    /// looking at deployments every second.
    pub fn new(
        url: impl Into<String>,
        api_key: impl Into<String>,
        instance: impl Into<String>,
        domain: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            api_key: api_key.into(),
            instance: instance.into(),
            domain: domain.into(),
            https: true,
            certificate: CertificateType::LetsEncrypt,
            server_id: None,
            traefik: None,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for DokployConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DokployConfig")
            .field("url", &self.url)
            .field("api_key", &"<redacted>")
            .field("instance", &self.instance)
            .field("domain", &self.domain)
            .field("https", &self.https)
            .field("certificate", &self.certificate)
            .field("server_id", &self.server_id)
            .field("traefik", &self.traefik)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

/// The dokploy backend.
#[derive(Debug, Clone)]
pub struct DokployEngine {
    api: Api,
    config: DokployConfig,
    /// For readiness probes: short timeouts, redirects not followed (a
    /// redirect is an answer).
    probe: reqwest::Client,
}

/// Where a stack lives in Dokploy, as one look found it.
#[derive(Debug)]
struct Home {
    project_id: String,
    environment_id: String,
    application: Option<ApplicationSummary>,
}

impl DokployEngine {
    /// A client for the Dokploy at `config.url`. Nothing is sent yet;
    /// [`Engine::ping`] or [`DokployEngine::check`] tell whether Dokploy
    /// answers and takes the key. A missing address, key, instance or
    /// domain is refused here, with what to set.
    pub fn connect(mut config: DokployConfig) -> Result<Self, EngineError> {
        if config.url.trim().is_empty() {
            return Err(EngineError::Config(
                "DOKPLOY_URL is not set; set it to your Dokploy's address, e.g. https://dokploy.example.com".to_owned(),
            ));
        }
        if config.api_key.trim().is_empty() {
            return Err(EngineError::Config(
                "DOKPLOY_API_KEY is not set; make a key under Settings > API Keys in Dokploy and set DOKPLOY_API_KEY to it".to_owned(),
            ));
        }
        let instance_max =
            SERVICE_NAME_MAX - APP_NAME_SUFFIX - "agentyard-".len() - 1 - yard_core::name::MAX_LEN;
        let instance_ok = !config.instance.is_empty()
            && config.instance.len() <= instance_max
            && config
                .instance
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !instance_ok {
            return Err(EngineError::Config(format!(
                "the instance id {:?} does not fit Dokploy's service names: use 1 to {instance_max} of a-z and 0-9",
                config.instance
            )));
        }
        config.domain = normalise_domain(&config.domain)?;
        if let Some(traefik) = &config.traefik {
            let traefik = traefik.trim();
            if traefik.is_empty() || traefik.contains(['/', ' ', '@']) {
                return Err(EngineError::Config(format!(
                    "the Traefik address {traefik:?} is not host:port"
                )));
            }
            config.traefik = Some(traefik.to_owned());
        }
        if config.poll_interval.is_zero() {
            config.poll_interval = Duration::from_secs(1);
        }
        let api = Api::new(&config.url, &config.api_key)?;
        let probe = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            // The Host header is the stack's domain, which HTTP/2 would
            // replace by the authority.
            .http1_only()
            .build()
            .map_err(|e| EngineError::Config(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { api, config, probe })
    }

    /// What the backend finds: whether Dokploy answers and takes the key,
    /// how many projects it holds and how many are this yard's stacks. For
    /// `yard doctor`.
    pub async fn check(&self) -> Result<String, EngineError> {
        let projects = self.projects().await?;
        let ours = projects
            .iter()
            .filter(|p| self.owner_of(p.description.as_deref()).is_some())
            .count();
        let scheme = if self.config.https {
            format!("HTTPS with {} certificates", self.config.certificate)
        } else {
            "plain HTTP".to_owned()
        };
        let via = match &self.config.traefik {
            Some(traefik) => format!(", reached through Traefik at {traefik}"),
            None => String::new(),
        };
        Ok(format!(
            "Dokploy at {} takes the API key; it holds {} projects, {ours} of them stacks of this yard (instance {}); stacks are served at <name>.{} over {scheme}{via}",
            self.api.dashboard(),
            projects.len(),
            self.config.instance,
            self.config.domain,
        ))
    }

    /// The name of a stack's project and application.
    fn resource_name(&self, stack: &StackName) -> String {
        format!("agentyard-{}-{stack}", self.config.instance)
    }

    /// The domain a stack is served at.
    fn host(&self, stack: &StackName) -> String {
        format!("{stack}.{}", self.config.domain)
    }

    /// Where the yard reaches a stack.
    fn endpoint_for(&self, stack: &StackName) -> Endpoint {
        let host = self.host(stack);
        match (&self.config.traefik, self.config.https) {
            (Some(traefik), true) => Endpoint::https(traefik.clone()).with_host(host),
            (Some(traefik), false) => Endpoint::http(traefik.clone()).with_host(host),
            (None, true) => Endpoint::https(host),
            (None, false) => Endpoint::http(host),
        }
    }

    /// The description that marks an object as this instance's, for
    /// `stack`: the Docker backend's labels, one per line.
    fn mark(&self, stack: &StackName) -> String {
        format!(
            "Made by agentyard for stack {stack}; the yard knows its own by the lines below, so leave them as they are.\n{LABEL_MANAGED}=true\n{LABEL_INSTANCE}={}\n{LABEL_STACK}={stack}",
            self.config.instance
        )
    }

    /// The stack a description marks as this instance's, if it does.
    fn owner_of(&self, description: Option<&str>) -> Option<StackName> {
        let (mut managed, mut instance, mut stack) = (false, None, None);
        for line in description?.lines() {
            match line.trim().split_once('=') {
                Some((LABEL_MANAGED, value)) => managed = value == "true",
                Some((LABEL_INSTANCE, value)) => instance = Some(value),
                Some((LABEL_STACK, value)) if !value.is_empty() => stack = Some(value),
                _ => {}
            }
        }
        (managed && instance == Some(self.config.instance.as_str()))
            .then(|| stack.map(StackName::from_trusted))
            .flatten()
    }

    fn owns(&self, description: Option<&str>, stack: &StackName) -> bool {
        self.owner_of(description).as_ref() == Some(stack)
    }

    /// Every project Dokploy holds, with environments and applications.
    async fn projects(&self) -> Result<Vec<Project>, EngineError> {
        Ok(self.api.get("project.all", &[]).await?)
    }

    /// This instance's projects, each with the stack it belongs to.
    fn own_projects(&self, projects: Vec<Project>) -> Vec<(StackName, Project)> {
        projects
            .into_iter()
            .filter_map(|project| {
                let stack = self.owner_of(project.description.as_deref())?;
                (project.name == self.resource_name(&stack)).then_some((stack, project))
            })
            .collect()
    }

    /// The stack's project among `projects`; `Foreign` when only a project
    /// without this instance's mark has its name.
    fn own_project(
        &self,
        projects: Vec<Project>,
        stack: &StackName,
    ) -> Result<Option<Project>, EngineError> {
        let name = self.resource_name(stack);
        let mut named = projects.into_iter().filter(|p| p.name == name).peekable();
        let taken = named.peek().is_some();
        match named.find(|p| self.owns(p.description.as_deref(), stack)) {
            Some(project) => Ok(Some(project)),
            None if taken => Err(EngineError::Foreign {
                kind: ResourceKind::Project,
                name,
            }),
            None => Ok(None),
        }
    }

    /// The stack's project among `projects`, if this instance has one; a
    /// same-named one without its mark is not there, as far as finding and
    /// removing go.
    fn find_own_project(&self, projects: Vec<Project>, stack: &StackName) -> Option<Project> {
        let name = self.resource_name(stack);
        projects
            .into_iter()
            .find(|p| p.name == name && self.owns(p.description.as_deref(), stack))
    }

    /// The environment the yard puts applications in: the default one
    /// (Dokploy's `production`).
    fn environment(project: &Project) -> Option<&wire::Environment> {
        let envs = &project.environments;
        envs.iter()
            .find(|e| e.is_default == Some(true))
            .or_else(|| envs.iter().find(|e| e.name == "production"))
            .or_else(|| envs.first())
    }

    /// The stack's application in its project, in whichever environment.
    fn application_in<'p>(
        &self,
        project: &'p Project,
        stack: &StackName,
    ) -> Option<&'p ApplicationSummary> {
        let name = self.resource_name(stack);
        project
            .environments
            .iter()
            .flat_map(|e| &e.applications)
            .find(|a| a.name == name)
    }

    /// `application.one`; `None` when it is gone.
    async fn application(&self, id: &str) -> Result<Option<Application>, EngineError> {
        unless_gone(
            self.api
                .get("application.one", &[("applicationId", id)])
                .await,
        )
    }

    /// Finds the stack's project, or makes it; either way its default
    /// environment and, if there is one, the stack's application in it.
    async fn ensure_home(&self, stack: &StackName) -> Result<Home, EngineError> {
        let name = self.resource_name(stack);
        if let Some(project) = self.own_project(self.projects().await?, stack)? {
            let environment = Self::environment(&project).ok_or_else(|| {
                EngineError::Contract(format!(
                    "project.all lists project {name} without an environment, where Dokploy makes one with every project"
                ))
            })?;
            tracing::debug!(project = %name, project_id = %project.project_id, "Dokploy project adopted");
            return Ok(Home {
                environment_id: environment.environment_id.clone(),
                application: self.application_in(&project, stack).cloned(),
                project_id: project.project_id,
            });
        }
        let mark = self.mark(stack);
        let created: CreatedProject = self
            .api
            .post(
                "project.create",
                &CreateProject {
                    name: &name,
                    description: &mark,
                },
            )
            .await?;
        tracing::info!(
            project = %name,
            project_id = %created.project.project_id,
            environment_id = %created.environment.environment_id,
            "Dokploy project created"
        );
        Ok(Home {
            project_id: created.project.project_id,
            environment_id: created.environment.environment_id,
            application: None,
        })
    }

    /// Finds the stack's application (refusing one without this instance's
    /// mark), or makes it.
    async fn ensure_application_object(
        &self,
        spec: &StackSpec,
        home: &Home,
    ) -> Result<Application, EngineError> {
        let name = self.resource_name(&spec.name);
        if let Some(summary) = &home.application {
            match self.application(&summary.application_id).await? {
                Some(app) if self.owns(app.description.as_deref(), &spec.name) => {
                    tracing::debug!(application = %name, application_id = %app.application_id, "Dokploy application adopted");
                    return Ok(app);
                }
                Some(_) => {
                    return Err(EngineError::Foreign {
                        kind: ResourceKind::Application,
                        name,
                    });
                }
                // Removed since the listing: make it again.
                None => {}
            }
        }
        let mark = self.mark(&spec.name);
        let app: Application = self
            .api
            .post(
                "application.create",
                &CreateApplication {
                    name: &name,
                    app_name: &name,
                    description: &mark,
                    environment_id: &home.environment_id,
                    server_id: self.config.server_id.as_deref(),
                },
            )
            .await?;
        tracing::info!(application = %name, application_id = %app.application_id, project_id = %home.project_id, "Dokploy application created");
        Ok(app)
    }

    /// Gives the application the spec's image, environment and limits.
    /// Saved every time: each save is idempotent, and it makes an adopted
    /// application match the spec it is deployed with.
    async fn configure(&self, spec: &StackSpec, app: &Application) -> Result<(), EngineError> {
        let id = app.application_id.as_str();
        self.api
            .post_unit(
                "application.saveDockerProvider",
                &SaveDockerProvider {
                    application_id: id,
                    docker_image: &spec.image,
                    username: None,
                    password: None,
                    registry_url: None,
                },
            )
            .await?;
        let env = env_text(&spec.env)?;
        self.api
            .post_unit(
                "application.saveEnvironment",
                &SaveEnvironment {
                    application_id: id,
                    env: env.as_deref(),
                    build_args: None,
                    build_secrets: None,
                    create_env_file: false,
                },
            )
            .await?;
        // Dokploy has no process limit; memory and CPU go to Swarm.
        self.api
            .post_unit(
                "application.update",
                &UpdateLimits {
                    application_id: id,
                    memory_limit: spec.limits.memory_bytes.map(|b| b.to_string()),
                    cpu_limit: spec
                        .limits
                        .cpus
                        .map(|cpus| ((cpus * 1e9).round() as i64).to_string()),
                },
            )
            .await?;
        Ok(())
    }

    /// Gives the application its domain unless it has it already; one it
    /// has is kept as it is (a changed port needs the stack made again).
    async fn ensure_domain(&self, spec: &StackSpec, app: &Application) -> Result<(), EngineError> {
        let host = self.host(&spec.name);
        if let Some(domain) = app
            .domains
            .iter()
            .find(|d| d.host.eq_ignore_ascii_case(&host))
        {
            tracing::debug!(host = %host, domain_id = %domain.domain_id, "Dokploy domain adopted");
            return Ok(());
        }
        let port = spec.port.unwrap_or(DEFAULT_PORT);
        self.api
            .post_unit(
                "domain.create",
                &CreateDomain {
                    host: &host,
                    path: "/",
                    port,
                    https: self.config.https,
                    certificate_type: self.config.certificate.as_str(),
                    application_id: &app.application_id,
                    domain_type: "application",
                },
            )
            .await?;
        tracing::info!(host = %host, port, application_id = %app.application_id, "Dokploy domain created");
        Ok(())
    }

    /// The stack's project and application, for the steps after the first
    /// two; an error naming what is missing when they are not there.
    async fn existing(
        &self,
        stack: &StackName,
        operation: &'static str,
    ) -> Result<(Project, ApplicationSummary), EngineError> {
        let name = self.resource_name(stack);
        let missing = |kind: ResourceKind| EngineError::Backend {
            operation,
            message: format!(
                "Dokploy has no {kind} {name} of this yard (removed by hand?); deploy the stack again"
            ),
        };
        let project = self
            .own_project(self.projects().await?, stack)?
            .ok_or_else(|| missing(ResourceKind::Project))?;
        let app = self
            .application_in(&project, stack)
            .cloned()
            .ok_or_else(|| missing(ResourceKind::Application))?;
        Ok((project, app))
    }

    /// Where a person reads a deployment's log in Dokploy's dashboard.
    fn deployments_page(&self, project_id: &str, app: &Application) -> String {
        format!(
            "{}dashboard/project/{project_id}/environment/{}/services/application/{}?tab=deployments",
            self.api.dashboard(),
            app.environment_id,
            app.application_id
        )
    }

    /// Waits until Dokploy's new deployment (one not in `before`) of
    /// application `id` is done, or says why it is not.
    async fn wait_deployed(
        &self,
        project_id: &str,
        id: &str,
        before: &HashSet<String>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        loop {
            tokio::time::sleep(self.config.poll_interval).await;
            let app = self.application(id).await?.ok_or_else(|| {
                EngineError::NotReady(
                    "its Dokploy application was removed while it deployed".to_owned(),
                )
            })?;
            // The application's status is the last deployment's, which may
            // be an older one until Dokploy's queue starts this one: only a
            // deployment that was not there before says how this one went.
            let newest = app
                .deployments
                .iter()
                .filter(|d| !before.contains(&d.deployment_id))
                .max_by(|a, b| a.created_at.cmp(&b.created_at));
            let page = || self.deployments_page(project_id, &app);
            match newest.and_then(|d| d.status.as_deref()) {
                Some("error") => {
                    let why = newest.map(failure).unwrap_or_default();
                    return Err(EngineError::NotReady(format!(
                        "Dokploy's deployment failed: {why}; its log is at {}",
                        page()
                    )));
                }
                Some("cancelled") => {
                    return Err(EngineError::NotReady(format!(
                        "Dokploy's deployment was cancelled; see {}",
                        page()
                    )));
                }
                Some("done") if app.application_status == Status::Done => return Ok(()),
                _ => {}
            }
            if Instant::now() >= deadline {
                let progress = match newest {
                    None => {
                        "Dokploy has not started the deployment (is its queue running?)".to_owned()
                    }
                    Some(_) => format!(
                        "Dokploy is still deploying it (status {})",
                        app.application_status.as_str()
                    ),
                };
                return Err(EngineError::NotReady(format!(
                    "it was not deployed within {}s: {progress}; see {}",
                    timeout.as_secs(),
                    page()
                )));
            }
        }
    }
}

#[async_trait]
impl Engine for DokployEngine {
    fn backend(&self) -> &'static str {
        "dokploy"
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.projects().await.map(drop)
    }

    async fn ensure_project(&self, spec: &StackSpec) -> Result<(), EngineError> {
        self.ensure_home(&spec.name).await.map(drop)
    }

    async fn ensure_application(&self, spec: &StackSpec) -> Result<(), EngineError> {
        let home = self.ensure_home(&spec.name).await?;
        let app = self.ensure_application_object(spec, &home).await?;
        self.configure(spec, &app).await?;
        self.ensure_domain(spec, &app).await
    }

    async fn deploy(&self, spec: &StackSpec, timeout: Duration) -> Result<Endpoint, EngineError> {
        let deadline = Instant::now() + timeout;
        let (project, summary) = self.existing(&spec.name, "application.deploy").await?;
        let id = summary.application_id;
        let before: HashSet<String> = self
            .application(&id)
            .await?
            .map(|app| {
                app.deployments
                    .into_iter()
                    .map(|d| d.deployment_id)
                    .collect()
            })
            .unwrap_or_default();
        let description = format!(
            "stack {} of yard instance {}",
            spec.name, self.config.instance
        );
        self.api
            .post_unit(
                "application.deploy",
                &Deploy {
                    application_id: &id,
                    title: "agentyard",
                    description: &description,
                },
            )
            .await?;
        tracing::info!(stack = %spec.name, application_id = %id, "Dokploy deployment requested");
        self.wait_deployed(&project.project_id, &id, &before, deadline, timeout)
            .await?;
        // Done means Swarm took the new service; ready means it answers.
        let endpoint = self.endpoint_for(&spec.name);
        loop {
            if self.probe(&endpoint).await {
                tracing::info!(stack = %spec.name, endpoint = %endpoint, "stack deployed on Dokploy");
                return Ok(endpoint);
            }
            if Instant::now() >= deadline {
                return Err(EngineError::NotReady(format!(
                    "Dokploy deployed it, but {endpoint} did not answer HTTP below 500 within {}s; does {} lead to Dokploy's Traefik, and does the image listen on port {}?",
                    timeout.as_secs(),
                    self.host(&spec.name),
                    spec.port.unwrap_or(DEFAULT_PORT),
                )));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    async fn endpoint(&self, name: &StackName) -> Result<Option<Endpoint>, EngineError> {
        let Some(project) = self.find_own_project(self.projects().await?, name) else {
            return Ok(None);
        };
        let Some(summary) = self.application_in(&project, name) else {
            return Ok(None);
        };
        // `running` is a redeployment: the old service serves meanwhile.
        if !matches!(summary.application_status, Status::Done | Status::Running) {
            return Ok(None);
        }
        let Some(app) = self.application(&summary.application_id).await? else {
            return Ok(None);
        };
        let host = self.host(name);
        Ok(app
            .domains
            .iter()
            .any(|d| d.host.eq_ignore_ascii_case(&host))
            .then(|| self.endpoint_for(name)))
    }

    async fn remove_stack(&self, name: &StackName) -> Result<Vec<StackResource>, EngineError> {
        let Some(project) = self.find_own_project(self.projects().await?, name) else {
            return Ok(Vec::new());
        };
        let resource = |kind, name: &str, stack: &StackName| StackResource {
            kind,
            name: name.to_owned(),
            stack: stack.clone(),
        };
        let mut removed = Vec::new();
        // Applications first, each on its own: deleting one stops its
        // service and takes its domains along, which removing the project
        // is not relied on to do.
        for app in project.environments.iter().flat_map(|e| &e.applications) {
            let domains = self
                .application(&app.application_id)
                .await?
                .map(|a| a.domains)
                .unwrap_or_default();
            let deleted = unless_gone(
                self.api
                    .post_unit(
                        "application.delete",
                        &ApplicationId {
                            application_id: &app.application_id,
                        },
                    )
                    .await,
            )?;
            if deleted.is_some() {
                removed.push(resource(ResourceKind::Application, &app.name, name));
                for domain in &domains {
                    removed.push(resource(ResourceKind::Domain, &domain.host, name));
                }
            }
        }
        let deleted = unless_gone(
            self.api
                .post_unit(
                    "project.remove",
                    &ProjectId {
                        project_id: &project.project_id,
                    },
                )
                .await,
        )?;
        if deleted.is_some() {
            removed.push(resource(ResourceKind::Project, &project.name, name));
        }
        tracing::info!(stack = %name, removed = removed.len(), "stack removed from Dokploy");
        Ok(removed)
    }

    async fn remove_application(&self, name: &StackName) -> Result<Option<String>, EngineError> {
        let Some(project) = self.find_own_project(self.projects().await?, name) else {
            return Ok(None);
        };
        let Some(app) = self.application_in(&project, name) else {
            return Ok(None);
        };
        let id = app.application_id.clone();
        unless_gone(
            self.api
                .post_unit(
                    "application.delete",
                    &ApplicationId {
                        application_id: &id,
                    },
                )
                .await,
        )?;
        tracing::info!(stack = %name, application_id = %id, "Dokploy application removed");
        Ok(Some(id))
    }

    /// Projects and applications only: domains go with their application,
    /// and listing them would take a call per application.
    async fn stack_resources(&self) -> Result<Vec<StackResource>, EngineError> {
        let mut found = Vec::new();
        for (stack, project) in self.own_projects(self.projects().await?) {
            for app in project.environments.iter().flat_map(|e| &e.applications) {
                found.push(StackResource {
                    kind: ResourceKind::Application,
                    name: app.name.clone(),
                    stack: stack.clone(),
                });
            }
            found.push(StackResource {
                kind: ResourceKind::Project,
                name: project.name,
                stack,
            });
        }
        Ok(found)
    }

    /// One `project.all`, mapped from each stack application's
    /// `applicationStatus`:
    ///
    /// - `done`, and `running` (a redeployment, the old service serving
    ///   meanwhile): running, with the stack's endpoint, its health left to
    ///   a probe;
    /// - `error`: exited with code 1 (its last deployment failed);
    /// - `idle`: exited with code 0 (stopped in Dokploy, or never
    ///   deployed).
    ///
    /// The endpoint is the stack's domain as the yard names it; whether the
    /// domain still exists is left to the probe.
    async fn stack_states(&self) -> Result<Vec<(StackName, StackState)>, EngineError> {
        let mut states = Vec::new();
        for (stack, project) in self.own_projects(self.projects().await?) {
            let Some(app) = self.application_in(&project, &stack) else {
                continue;
            };
            let id = app.application_id.clone();
            let state = match app.application_status {
                Status::Done | Status::Running => StackState::Running {
                    id,
                    healthy: None,
                    attached: true,
                    endpoint: Some(self.endpoint_for(&stack)),
                },
                Status::Error => StackState::Exited {
                    id,
                    code: 1,
                    oom: false,
                    finished: None,
                },
                Status::Idle => StackState::Exited {
                    id,
                    code: 0,
                    oom: false,
                    finished: None,
                },
            };
            states.push((stack, state));
        }
        Ok(states)
    }

    /// Never yields: Dokploy has no event feed. A stream that ended would
    /// have the watcher subscribe again, and look at every stack, each
    /// second; this one leaves it to the periodic look.
    fn stack_events(&self) -> BoxStream<'static, Result<StackEvent, EngineError>> {
        futures::stream::pending().boxed()
    }

    async fn probe(&self, endpoint: &Endpoint) -> bool {
        let request = self
            .probe
            .get(endpoint.url("/"))
            .header(reqwest::header::HOST, endpoint.host_header());
        matches!(request.send().await, Ok(response) if response.status().as_u16() < 500)
    }
}

/// Why a failed deployment failed, in Dokploy's words.
fn failure(deployment: &Deployment) -> String {
    deployment
        .error_message
        .clone()
        .filter(|m| !m.trim().is_empty())
        .or_else(|| deployment.title.clone())
        .unwrap_or_else(|| "Dokploy gives no reason".to_owned())
}

/// The stacks' domain, checked: stacks are `<stack>.<domain>`, so a
/// leading `*.` (as in the wildcard DNS record) and a trailing dot are
/// dropped.
fn normalise_domain(raw: &str) -> Result<String, EngineError> {
    let domain = raw.trim().trim_start_matches("*.").trim_end_matches('.');
    let domain = domain.to_ascii_lowercase();
    if domain.is_empty() {
        return Err(EngineError::Config(
            "the stacks' domain is not set; stacks are served at <stack>.<domain>, so set it to a domain whose names lead to Dokploy's Traefik".to_owned(),
        ));
    }
    let valid = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    if !valid {
        return Err(EngineError::Config(format!(
            "{raw:?} is not a domain stacks can be served under, like stacks.example.com"
        )));
    }
    Ok(domain)
}

/// The environment as Dokploy takes it: `KEY=value` lines, read with
/// dotenv's rules. A value those rules would change (spaces at its ends, a
/// `#`, quotes) is quoted with a quote it does not contain; a value on
/// several lines, or one with every kind of quote, cannot be carried.
fn env_text(env: &[(String, String)]) -> Result<Option<String>, EngineError> {
    if env.is_empty() {
        return Ok(None);
    }
    let mut lines = Vec::with_capacity(env.len());
    for (key, value) in env {
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !key_ok {
            return Err(EngineError::Config(format!(
                "the stack environment variable {key:?} has a name Dokploy cannot carry; use letters, digits and _"
            )));
        }
        if value.contains(['\n', '\r']) {
            return Err(EngineError::Config(format!(
                "the stack environment variable {key} spans several lines, which Dokploy's environment cannot carry"
            )));
        }
        let plain = value.trim() == value && !value.contains(['#', '"', '\'', '`']);
        if plain {
            lines.push(format!("{key}={value}"));
            continue;
        }
        let Some(quote) = ['\'', '"', '`'].into_iter().find(|q| !value.contains(*q)) else {
            return Err(EngineError::Config(format!(
                "the stack environment variable {key} holds every kind of quote, which Dokploy's environment cannot carry"
            )));
        };
        lines.push(format!("{key}={quote}{value}{quote}"));
    }
    Ok(Some(lines.join("\n")))
}
