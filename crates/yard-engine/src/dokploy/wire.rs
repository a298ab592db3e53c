//! Dokploy's requests and answers, as the yard sends and reads them.
//!
//! Requests follow the request schemas of Dokploy's OpenAPI document field
//! for field (the test kit's fake checks every one against it). The
//! document gives no response schemas (every 200 is an empty object
//! placeholder), so answers follow what Dokploy's procedures return: rows
//! of its database in camelCase, with their relations nested. Only the
//! fields the yard reads are declared; the rest are ignored, so Dokploy may
//! add columns freely, but a missing or mistyped field the yard needs is a
//! contract error rather than a guess.

use serde::{Deserialize, Serialize};

/// `applicationStatus` of an application: what its last deployment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Status {
    /// Never deployed, or stopped.
    Idle,
    /// A deployment is under way.
    Running,
    /// The last deployment finished.
    Done,
    /// The last deployment failed.
    Error,
}

impl Status {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Done => "done",
            Self::Error => "error",
        }
    }
}

/// One project of `project.all`, with its environments and their
/// applications.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Project {
    pub(super) project_id: String,
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) environments: Vec<Environment>,
}

/// An environment of a project (Dokploy makes `production` with each one).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Environment {
    pub(super) environment_id: String,
    pub(super) name: String,
    /// Missing on Dokploys older than default environments.
    #[serde(default)]
    pub(super) is_default: Option<bool>,
    pub(super) applications: Vec<ApplicationSummary>,
}

/// An application as `project.all` lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApplicationSummary {
    pub(super) application_id: String,
    pub(super) name: String,
    pub(super) application_status: Status,
}

/// What `project.create` answers: the project and the environment made
/// with it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct CreatedProject {
    pub(super) project: ProjectRow,
    pub(super) environment: EnvironmentRow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProjectRow {
    pub(super) project_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EnvironmentRow {
    pub(super) environment_id: String,
}

/// An application as `application.one` (with its domains and deployments)
/// or `application.create` (without them) answers it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Application {
    pub(super) application_id: String,
    pub(super) description: Option<String>,
    pub(super) environment_id: String,
    pub(super) application_status: Status,
    #[serde(default)]
    pub(super) domains: Vec<Domain>,
    #[serde(default)]
    pub(super) deployments: Vec<Deployment>,
}

/// A domain Dokploy's Traefik routes to an application.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Domain {
    pub(super) domain_id: String,
    pub(super) host: String,
}

/// One deployment of an application.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Deployment {
    pub(super) deployment_id: String,
    /// `running`, `done`, `error` or `cancelled`.
    pub(super) status: Option<String>,
    pub(super) title: Option<String>,
    /// Why it failed, on Dokploys that record it.
    #[serde(default)]
    pub(super) error_message: Option<String>,
    #[serde(default)]
    pub(super) created_at: Option<String>,
}

/// `project.create`.
#[derive(Debug, Serialize)]
pub(super) struct CreateProject<'a> {
    pub(super) name: &'a str,
    pub(super) description: &'a str,
}

/// `project.remove`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProjectId<'a> {
    pub(super) project_id: &'a str,
}

/// `application.create`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateApplication<'a> {
    pub(super) name: &'a str,
    /// Dokploy appends a random suffix of its own to make the service name.
    pub(super) app_name: &'a str,
    pub(super) description: &'a str,
    pub(super) environment_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) server_id: Option<&'a str>,
}

/// `application.delete` and the other operations on one application.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApplicationId<'a> {
    pub(super) application_id: &'a str,
}

/// `application.saveDockerProvider`: an image from a registry Dokploy can
/// pull without credentials (the document requires the credential fields,
/// as null).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SaveDockerProvider<'a> {
    pub(super) application_id: &'a str,
    pub(super) docker_image: &'a str,
    pub(super) username: Option<&'a str>,
    pub(super) password: Option<&'a str>,
    pub(super) registry_url: Option<&'a str>,
}

/// `application.saveEnvironment`: the environment as `KEY=value` lines;
/// no build arguments or secrets (nothing is built) and no `.env` file.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SaveEnvironment<'a> {
    pub(super) application_id: &'a str,
    pub(super) env: Option<&'a str>,
    pub(super) build_args: Option<&'a str>,
    pub(super) build_secrets: Option<&'a str>,
    pub(super) create_env_file: bool,
}

/// `application.update` with only the resource limits: memory in bytes and
/// CPU in billionths, as strings (Dokploy hands them to Swarm as they are).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateLimits<'a> {
    pub(super) application_id: &'a str,
    pub(super) memory_limit: Option<String>,
    pub(super) cpu_limit: Option<String>,
}

/// `application.deploy`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Deploy<'a> {
    pub(super) application_id: &'a str,
    pub(super) title: &'a str,
    pub(super) description: &'a str,
}

/// `domain.create` for an application.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateDomain<'a> {
    pub(super) host: &'a str,
    pub(super) path: &'a str,
    pub(super) port: u16,
    pub(super) https: bool,
    pub(super) certificate_type: &'a str,
    pub(super) application_id: &'a str,
    pub(super) domain_type: &'a str,
}
