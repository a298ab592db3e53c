//! The few calls the forge's rules make as the bot: a repository (its
//! default branch, and whether the bot may read it), what a user may do in
//! it, a comment on an issue, a pull request. Credentials go in the `Authorization` header
//! only; an error says what was asked and what the forge answered, never
//! the token.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{Api, Auth};
use crate::secret::Secret;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the forge's address is not usable: {0}")]
    Address(String),
    #[error("cannot reach the forge to {what}: {why}")]
    Unreachable { what: String, why: String },
    #[error("the forge answered {status} to {what}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    #[error("the forge's answer to {what} lacks {field}")]
    Incomplete { what: String, field: &'static str },
}

impl ClientError {
    /// Whether the forge said there is no such thing (or that the caller
    /// may not see it, which Gitea answers alike).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status: 404, .. })
    }
}

/// A repository as the bot sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoInfo {
    /// `owner/name`.
    pub full_name: String,
    pub default_branch: String,
    /// Where git reaches it over HTTP(S).
    pub clone_url: String,
}

/// What a user may do in a repository, as the forge grades it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    None,
    Read,
    Write,
    Admin,
    Owner,
}

impl Permission {
    /// The forge's name for it; `None` for a name it does not document.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "read" => Self::Read,
            "write" => Self::Write,
            "admin" => Self::Admin,
            "owner" => Self::Owner,
            _ => return None,
        })
    }

    /// Whether it lets the user push to the repository.
    pub fn can_write(self) -> bool {
        self >= Self::Write
    }
}

/// A pull request the forge opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullInfo {
    pub number: i64,
    pub url: String,
}

/// Gitea's API as one user with a token; cheap to clone.
#[derive(Debug, Clone)]
pub struct ForgeClient {
    api: Api,
    token: Secret,
}

impl ForgeClient {
    /// The forge at `forge_url` (its root or its `/api/v1`), as the owner
    /// of `token`.
    pub fn new(forge_url: &str, token: Secret, timeout: Duration) -> Result<Self, ClientError> {
        let api = Api::new(forge_url, timeout).map_err(|e| ClientError::Address(e.to_string()))?;
        Ok(Self { api, token })
    }

    /// The forge's root address, without the trailing `/`.
    pub fn root(&self) -> String {
        self.api.root()
    }

    async fn call(
        &self,
        what: String,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
        ok: StatusCode,
    ) -> Result<Value, ClientError> {
        let answer = self
            .api
            .send(method, segments, &[], Auth::Token(&self.token), body)
            .await
            .map_err(|why| ClientError::Unreachable {
                what: what.clone(),
                why,
            })?;
        if answer.status != ok {
            return Err(ClientError::Refused {
                what,
                status: answer.status.as_u16(),
                message: answer.message(),
            });
        }
        Ok(answer.body)
    }

    /// `GET /repos/{owner}/{repo}`.
    pub async fn repository(&self, owner: &str, repo: &str) -> Result<RepoInfo, ClientError> {
        let what = format!("read repository {owner}/{repo}");
        let body = self
            .call(
                what.clone(),
                Method::GET,
                &["repos", owner, repo],
                None,
                StatusCode::OK,
            )
            .await?;
        let field = |name: &'static str| {
            body.get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or(ClientError::Incomplete {
                    what: what.clone(),
                    field: name,
                })
        };
        Ok(RepoInfo {
            full_name: field("full_name")?,
            default_branch: field("default_branch")?,
            clone_url: field("clone_url")?,
        })
    }

    /// `POST /repos/{owner}/{repo}/issues/{number}/comments`.
    pub async fn comment(
        &self,
        owner: &str,
        repo: &str,
        number: i64,
        text: &str,
    ) -> Result<(), ClientError> {
        let index = number.to_string();
        self.call(
            format!("comment on {owner}/{repo}#{number}"),
            Method::POST,
            &["repos", owner, repo, "issues", &index, "comments"],
            Some(&json!({ "body": text })),
            StatusCode::CREATED,
        )
        .await?;
        Ok(())
    }

    /// `GET /repos/{owner}/{repo}/collaborators/{user}/permission`: what
    /// `user` may do in the repository. The forge answers only a site
    /// admin, a repository admin, or the user asking about themselves.
    pub async fn permission(
        &self,
        owner: &str,
        repo: &str,
        user: &str,
    ) -> Result<Permission, ClientError> {
        let what = format!("read {user}'s permission in {owner}/{repo}");
        let answer = self
            .call(
                what.clone(),
                Method::GET,
                &["repos", owner, repo, "collaborators", user, "permission"],
                None,
                StatusCode::OK,
            )
            .await?;
        answer
            .get("permission")
            .and_then(Value::as_str)
            .and_then(Permission::from_name)
            .ok_or(ClientError::Incomplete {
                what,
                field: "permission",
            })
    }

    /// `POST /repos/{owner}/{repo}/pulls`: `head` into `base`.
    pub async fn create_pull(
        &self,
        owner: &str,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<PullInfo, ClientError> {
        let what = format!("open a pull request {head} → {base} in {owner}/{repo}");
        let answer = self
            .call(
                what.clone(),
                Method::POST,
                &["repos", owner, repo, "pulls"],
                Some(&json!({ "head": head, "base": base, "title": title, "body": body })),
                StatusCode::CREATED,
            )
            .await?;
        let number =
            answer
                .get("number")
                .and_then(Value::as_i64)
                .ok_or(ClientError::Incomplete {
                    what: what.clone(),
                    field: "number",
                })?;
        let url = answer
            .get("html_url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(PullInfo { number, url })
    }
}
