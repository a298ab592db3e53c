//! The fake Gitea's state and what its operations do: users and their
//! access tokens, organisations with their teams, system and default
//! webhooks, repositories (each a real bare repository on disk), issues,
//! comments and pull requests, answered in the shapes Gitea's API gives.
//!
//! It is a fake: one process's memory, no database, no permissions beyond
//! what the operations it serves check (site admin, organisation owner,
//! team membership, repository read and write), and no events of its own
//! (webhooks go out only when a test asks, see `GiteaFake::deliver`).
//! Where Gitea behaves in a way a client can trip over, the fake does the
//! same: a user made through the API must change their password before
//! using the API unless `must_change_password` is false, a token needs a
//! scope, a hook is inactive unless `active` is true and is a system hook
//! only with `config.is_system_webhook` set to `"true"`, editing a hook
//! replaces its events (none means `push`) and keeps its secret, and a
//! pull request whose branch is missing is a 404.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use axum::http::StatusCode;
use serde_json::{Value, json};

/// What an operation answers: a status and a JSON body, if any.
pub(super) type Answer = (StatusCode, Option<Value>);

/// The version the fake reports.
pub(super) const VERSION: &str = "1.25.0+fake";

/// Gitea's MIN_PASSWORD_LENGTH default.
const MIN_PASSWORD_LENGTH: usize = 8;

/// Names Gitea keeps for itself (users and organisations).
const RESERVED_NAMES: [&str; 37] = [
    ".",
    "..",
    ".well-known",
    "admin",
    "api",
    "assets",
    "attachments",
    "avatar",
    "avatars",
    "captcha",
    "commits",
    "debug",
    "error",
    "explore",
    "favicon.ico",
    "ghost",
    "issues",
    "login",
    "manifest.json",
    "metrics",
    "milestones",
    "new",
    "notifications",
    "org",
    "pulls",
    "raw",
    "repo",
    "repo-avatars",
    "robots.txt",
    "search",
    "serviceworker.js",
    "ssh_info",
    "swagger.v1.json",
    "user",
    "v2",
    "gitea-actions",
    "-",
];

/// Token scope categories.
const SCOPE_CATEGORIES: [&str; 9] = [
    "activitypub",
    "admin",
    "misc",
    "notification",
    "organization",
    "package",
    "issue",
    "repository",
    "user",
];

/// Webhook event types in the order Gitea lists a hook's events.
const HOOK_EVENTS: [&str; 27] = [
    "create",
    "delete",
    "fork",
    "push",
    "issues",
    "issue_assign",
    "issue_label",
    "issue_milestone",
    "issue_comment",
    "pull_request",
    "pull_request_assign",
    "pull_request_label",
    "pull_request_milestone",
    "pull_request_comment",
    "pull_request_review_approved",
    "pull_request_review_rejected",
    "pull_request_review_comment",
    "pull_request_sync",
    "pull_request_review_request",
    "wiki",
    "repository",
    "release",
    "package",
    "status",
    "workflow_run",
    "workflow_job",
    "schedule",
];

/// Who sends a request.
#[derive(Debug, Clone)]
pub(super) struct Doer {
    pub(super) id: i64,
    /// A token's scopes; `None` when signed in with a password.
    pub(super) scopes: Option<Vec<String>>,
    /// Whether the credentials came as HTTP Basic authentication.
    pub(super) basic: bool,
}

/// What an operation asks of the caller before it runs, as Gitea's router
/// does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gate {
    /// Anyone, signed in or not.
    Public,
    /// A signed-in user (`reqToken`).
    Signed,
    /// Basic authentication as the path's user or a site admin (the token
    /// routes).
    Basic,
    /// A site admin (`reqSiteAdmin`).
    Admin,
}

/// The gate and token scope category of each operation the fake serves.
pub(super) fn gate(operation: &str) -> Option<(Gate, Option<&'static str>)> {
    let admin = Some("admin");
    Some(match operation {
        "getVersion" => (Gate::Public, None),
        "adminCreateUser" | "adminEditUser" | "adminCreateRepo" | "adminListHooks"
        | "adminCreateHook" | "adminGetHook" | "adminEditHook" | "adminDeleteHook" => {
            (Gate::Admin, admin)
        }
        "userGet" => (Gate::Public, Some("user")),
        "userGetCurrent" => (Gate::Signed, Some("user")),
        "userGetTokens" | "userCreateToken" | "userDeleteAccessToken" => {
            (Gate::Basic, Some("user"))
        }
        "orgCreate" | "orgListTeams" | "orgAddTeamMember" | "orgListTeamMembers"
        | "createOrgRepo" => (Gate::Signed, Some("organization")),
        "orgGet" => (Gate::Public, Some("organization")),
        "repoGet" | "repoListPullRequests" | "repoGetPullRequest" => {
            (Gate::Public, Some("repository"))
        }
        "repoCreatePullRequest" | "repoGetRepoPermissions" => (Gate::Signed, Some("repository")),
        "issueGetIssue" | "issueGetComments" => (Gate::Public, Some("issue")),
        "issueCreateIssue" | "issueCreateComment" => (Gate::Signed, Some("issue")),
        _ => return None,
    })
}

/// Whether a token's `scopes` allow `write` (or read) access to `category`.
pub(super) fn scopes_allow(scopes: &[String], category: &str, write: bool) -> bool {
    scopes.iter().any(|s| {
        s == "all"
            || *s == format!("write:{category}")
            || (!write && *s == format!("read:{category}"))
    })
}

#[derive(Debug, Clone)]
pub(super) struct UserRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) full_name: String,
    pub(super) email: String,
    pub(super) password: String,
    pub(super) is_admin: bool,
    pub(super) is_org: bool,
    pub(super) must_change_password: bool,
    pub(super) active: bool,
    pub(super) prohibit_login: bool,
    pub(super) restricted: bool,
    pub(super) visibility: String,
    pub(super) website: String,
    pub(super) location: String,
    pub(super) description: String,
    pub(super) login_name: String,
    pub(super) created: String,
}

#[derive(Debug, Clone)]
pub(super) struct TokenRow {
    pub(super) id: i64,
    pub(super) user_id: i64,
    pub(super) name: String,
    pub(super) sha1: String,
    pub(super) scopes: Vec<String>,
    pub(super) created: String,
    pub(super) deleted: bool,
}

#[derive(Debug, Clone)]
pub(super) struct TeamRow {
    pub(super) id: i64,
    pub(super) org_id: i64,
    pub(super) name: String,
    pub(super) permission: String,
    pub(super) members: Vec<i64>,
}

#[derive(Debug, Clone)]
pub(super) struct RepoRow {
    pub(super) id: i64,
    pub(super) owner_id: i64,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) private: bool,
    pub(super) default_branch: String,
    pub(super) object_format: String,
    pub(super) created: String,
    /// The last issue or pull request number handed out.
    pub(super) last_index: i64,
}

#[derive(Debug, Clone)]
pub(super) struct IssueRow {
    pub(super) id: i64,
    pub(super) repo_id: i64,
    pub(super) index: i64,
    pub(super) poster_id: i64,
    pub(super) title: String,
    pub(super) body: String,
    pub(super) assignees: Vec<i64>,
    pub(super) closed: bool,
    pub(super) comments: i64,
    pub(super) created: String,
    pub(super) updated: String,
}

#[derive(Debug, Clone)]
pub(super) struct CommentRow {
    pub(super) id: i64,
    pub(super) issue_id: i64,
    pub(super) poster_id: i64,
    pub(super) body: String,
    pub(super) created: String,
}

#[derive(Debug, Clone)]
pub(super) struct PullRow {
    pub(super) id: i64,
    pub(super) issue_id: i64,
    pub(super) head: String,
    pub(super) base: String,
    pub(super) head_sha: String,
    pub(super) base_sha: String,
    pub(super) merge_base: String,
    pub(super) additions: i64,
    pub(super) deletions: i64,
    pub(super) changed_files: i64,
}

#[derive(Debug, Clone)]
pub(super) struct HookRow {
    pub(super) id: i64,
    pub(super) system: bool,
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) url: String,
    pub(super) content_type: String,
    pub(super) secret: String,
    pub(super) events: Vec<String>,
    pub(super) active: bool,
    pub(super) branch_filter: String,
    pub(super) authorization_header: String,
    pub(super) created: String,
    pub(super) updated: String,
}

/// The forge: every record, and where the repositories live.
#[derive(Debug)]
pub(super) struct Forge {
    /// Gitea's ROOT_URL, with its trailing slash.
    pub(super) root: String,
    pub(super) git_root: PathBuf,
    pub(super) users: Vec<UserRow>,
    pub(super) tokens: Vec<TokenRow>,
    pub(super) teams: Vec<TeamRow>,
    pub(super) repos: Vec<RepoRow>,
    pub(super) issues: Vec<IssueRow>,
    pub(super) comments: Vec<CommentRow>,
    pub(super) pulls: Vec<PullRow>,
    pub(super) hooks: Vec<HookRow>,
    serial: i64,
    clock: u64,
}

fn text(body: &Value, name: &str) -> String {
    body[name].as_str().unwrap_or_default().to_owned()
}

fn flag(body: &Value, name: &str) -> Option<bool> {
    body[name].as_bool()
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Gitea's rule for user and organisation names.
fn valid_username(name: &str) -> bool {
    let special = |c: char| matches!(c, '-' | '.' | '_');
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || special(c))
        && !name.ends_with(special)
        && !name
            .chars()
            .zip(name.chars().skip(1))
            .any(|(a, b)| special(a) && special(b))
}

fn valid_email(email: &str) -> bool {
    matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
}

/// A fresh token: 40 hexadecimal digits, like Gitea's.
fn new_sha1() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")[..40].to_owned()
}

/// Runs `git ARGS` in `dir`; its trimmed output, or its complaint.
pub(super) fn run_git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(["-c", "safe.directory=*", "-c", "init.defaultBranch=main"])
        .args([
            "-c",
            "user.name=Gitea",
            "-c",
            "user.email=gitea@fake.invalid",
        ])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Forge {
    pub(super) fn new(root: String, git_root: PathBuf) -> Self {
        Self {
            root,
            git_root,
            users: Vec::new(),
            tokens: Vec::new(),
            teams: Vec::new(),
            repos: Vec::new(),
            issues: Vec::new(),
            comments: Vec::new(),
            pulls: Vec::new(),
            hooks: Vec::new(),
            serial: 0,
            clock: 0,
        }
    }

    fn next_id(&mut self) -> i64 {
        self.serial += 1;
        self.serial
    }

    /// A timestamp later than every earlier one.
    pub(super) fn now(&mut self) -> String {
        self.clock += 1;
        let s = self.clock;
        format!(
            "2025-01-01T{:02}:{:02}:{:02}Z",
            (s / 3600) % 24,
            (s / 60) % 60,
            s % 60
        )
    }

    /// Gitea's error shape.
    pub(super) fn error(&self, status: StatusCode, message: impl Into<String>) -> Answer {
        (
            status,
            Some(json!({ "message": message.into(), "url": format!("{}api/swagger", self.root) })),
        )
    }

    pub(super) fn not_found(&self) -> Answer {
        (
            StatusCode::NOT_FOUND,
            Some(json!({
                "errors": [],
                "message": "The target couldn't be found.",
                "url": format!("{}api/swagger", self.root),
            })),
        )
    }

    // ----- lookups and permissions -----

    pub(super) fn user(&self, name: &str) -> Option<&UserRow> {
        self.users.iter().find(|u| same(&u.name, name))
    }

    pub(super) fn user_by_id(&self, id: i64) -> Option<&UserRow> {
        self.users.iter().find(|u| u.id == id)
    }

    fn name_of(&self, id: i64) -> String {
        self.user_by_id(id)
            .map(|u| u.name.clone())
            .unwrap_or_default()
    }

    pub(super) fn is_admin(&self, id: i64) -> bool {
        self.user_by_id(id).is_some_and(|u| u.is_admin)
    }

    fn is_org_owner(&self, user_id: i64, org_id: i64) -> bool {
        self.teams
            .iter()
            .any(|t| t.org_id == org_id && t.permission == "owner" && t.members.contains(&user_id))
    }

    fn is_org_member(&self, user_id: i64, org_id: i64) -> bool {
        self.teams
            .iter()
            .any(|t| t.org_id == org_id && t.members.contains(&user_id))
    }

    /// 0 none, 1 read, 2 write, 3 admin.
    pub(super) fn access(&self, user_id: Option<i64>, repo: &RepoRow) -> u8 {
        let public = if repo.private { 0 } else { 1 };
        let Some(id) = user_id else {
            return public;
        };
        if self.is_admin(id) || repo.owner_id == id || self.is_org_owner(id, repo.owner_id) {
            return 3;
        }
        let team = self
            .teams
            .iter()
            .filter(|t| t.org_id == repo.owner_id && t.members.contains(&id))
            .map(|t| match t.permission.as_str() {
                "admin" => 3,
                "write" => 2,
                _ => 1,
            })
            .max()
            .unwrap_or(0);
        team.max(public)
    }

    pub(super) fn repo(&self, owner: &str, name: &str) -> Option<&RepoRow> {
        let owner = self.user(owner)?;
        self.repos
            .iter()
            .find(|r| r.owner_id == owner.id && same(&r.name, name))
    }

    pub(super) fn repo_path(&self, repo: &RepoRow) -> PathBuf {
        self.git_root.join(format!(
            "{}/{}.git",
            self.name_of(repo.owner_id).to_lowercase(),
            repo.name.to_lowercase()
        ))
    }

    /// The user behind a token, if the token is live.
    pub(super) fn token(&self, sha1: &str) -> Option<&TokenRow> {
        self.tokens.iter().find(|t| !t.deleted && t.sha1 == sha1)
    }

    // ----- views: Gitea's JSON -----

    pub(super) fn user_json(&self, user: &UserRow) -> Value {
        json!({
            "id": user.id,
            "login": user.name,
            "login_name": user.login_name,
            "source_id": 0,
            "full_name": user.full_name,
            "email": user.email,
            "avatar_url": format!("{}avatars/{}", self.root, user.id),
            "html_url": format!("{}{}", self.root, user.name),
            "language": "",
            "is_admin": user.is_admin,
            "last_login": "0001-01-01T00:00:00Z",
            "created": user.created,
            "restricted": user.restricted,
            "active": user.active,
            "prohibit_login": user.prohibit_login,
            "location": user.location,
            "website": user.website,
            "description": user.description,
            "visibility": user.visibility,
            "followers_count": 0,
            "following_count": 0,
            "starred_repos_count": 0,
            "type": if user.is_org { "Organization" } else { "User" },
        })
    }

    fn user_json_by_id(&self, id: i64) -> Value {
        self.user_by_id(id)
            .map_or(Value::Null, |u| self.user_json(u))
    }

    fn org_json(&self, org: &UserRow) -> Value {
        json!({
            "id": org.id,
            "name": org.name,
            "username": org.name,
            "full_name": org.full_name,
            "email": org.email,
            "avatar_url": format!("{}avatars/{}", self.root, org.id),
            "description": org.description,
            "website": org.website,
            "location": org.location,
            "visibility": org.visibility,
            "repo_admin_change_team_access": false,
        })
    }

    fn team_json(&self, team: &TeamRow) -> Value {
        let units = [
            "repo.actions",
            "repo.code",
            "repo.issues",
            "repo.ext_issues",
            "repo.wiki",
            "repo.ext_wiki",
            "repo.pulls",
            "repo.releases",
            "repo.projects",
            "repo.packages",
        ];
        let units_map: serde_json::Map<String, Value> = units
            .iter()
            .map(|u| ((*u).to_owned(), json!(team.permission)))
            .collect();
        json!({
            "id": team.id,
            "name": team.name,
            "description": "",
            "organization": self.user_by_id(team.org_id).map_or(Value::Null, |o| self.org_json(o)),
            "includes_all_repositories": team.permission == "owner",
            "permission": team.permission,
            "units": units,
            "units_map": units_map,
            "can_create_org_repo": team.permission == "owner",
        })
    }

    fn token_json(token: &TokenRow, with_secret: bool) -> Value {
        json!({
            "id": token.id,
            "name": token.name,
            "sha1": if with_secret { token.sha1.as_str() } else { "" },
            "token_last_eight": &token.sha1[token.sha1.len() - 8..],
            "scopes": token.scopes,
            "created_at": token.created,
            "last_used_at": token.created,
        })
    }

    pub(super) fn hook_json(hook: &HookRow) -> Value {
        json!({
            "id": hook.id,
            "type": hook.kind,
            "name": hook.name,
            "branch_filter": hook.branch_filter,
            "config": { "url": hook.url, "content_type": hook.content_type },
            "events": hook.events,
            "authorization_header": hook.authorization_header,
            "active": hook.active,
            "updated_at": hook.updated,
            "created_at": hook.created,
        })
    }

    /// A repository as `viewer` sees it (its permissions).
    pub(super) fn repo_json(&self, repo: &RepoRow, viewer: Option<i64>) -> Value {
        let owner = self.name_of(repo.owner_id);
        let full_name = format!("{owner}/{}", repo.name);
        let access = self.access(viewer, repo);
        let empty = run_git(
            &self.repo_path(repo),
            &["for-each-ref", "--count=1", "refs/heads/"],
        )
        .map(|out| out.is_empty())
        .unwrap_or(true);
        let open_issues = self
            .issues
            .iter()
            .filter(|i| i.repo_id == repo.id && !i.closed && !self.is_pull(i.id))
            .count();
        let open_pulls = self
            .pulls
            .iter()
            .filter(|p| {
                self.issues
                    .iter()
                    .any(|i| i.id == p.issue_id && i.repo_id == repo.id && !i.closed)
            })
            .count();
        let host = self
            .root
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut answer = json!({
            "id": repo.id,
            "owner": self.user_json_by_id(repo.owner_id),
            "name": repo.name,
            "full_name": full_name,
            "description": repo.description,
            "empty": empty,
            "private": repo.private,
            "fork": false,
            "template": false,
            "parent": null,
            "mirror": false,
            "size": 0,
            "language": "",
            "languages_url": format!("{}api/v1/repos/{full_name}/languages", self.root),
            "html_url": format!("{}{full_name}", self.root),
            "url": format!("{}api/v1/repos/{full_name}", self.root),
            "link": "",
            "ssh_url": format!("git@{host}:{full_name}.git"),
            "clone_url": format!("{}{full_name}.git", self.root),
            "original_url": "",
            "website": "",
            "stars_count": 0,
            "forks_count": 0,
            "watchers_count": 1,
            "open_issues_count": open_issues,
            "open_pr_counter": open_pulls,
            "release_counter": 0,
        });
        let settings = json!({
            "default_branch": repo.default_branch,
            "archived": false,
            "created_at": repo.created,
            "updated_at": repo.created,
            "archived_at": "1970-01-01T00:00:00Z",
            "permissions": { "admin": access >= 3, "push": access >= 2, "pull": access >= 1 },
            "has_issues": true,
            "internal_tracker": {
                "enable_time_tracker": true,
                "allow_only_contributors_to_track_time": true,
                "enable_issue_dependencies": true,
            },
            "has_wiki": true,
            "has_pull_requests": true,
            "has_projects": true,
            "has_releases": true,
            "has_packages": true,
            "has_actions": true,
            "has_code": true,
            "ignore_whitespace_conflicts": false,
            "allow_merge_commits": true,
            "allow_rebase": true,
            "allow_rebase_explicit": true,
            "allow_squash_merge": true,
            "allow_fast_forward_only_merge": true,
            "allow_rebase_update": true,
            "allow_manual_merge": false,
            "autodetect_manual_merge": false,
            "default_delete_branch_after_merge": false,
            "default_merge_style": "merge",
            "default_allow_maintainer_edit": false,
            "avatar_url": "",
            "internal": false,
            "mirror_interval": "",
            "object_format_name": repo.object_format,
            "mirror_updated": "0001-01-01T00:00:00Z",
            "repo_transfer": null,
            "topics": [],
            "licenses": [],
            "projects_mode": "all",
        });
        if let (Some(fields), Value::Object(more)) = (answer.as_object_mut(), settings) {
            fields.extend(more);
        }
        answer
    }

    fn is_pull(&self, issue_id: i64) -> bool {
        self.pulls.iter().any(|p| p.issue_id == issue_id)
    }

    pub(super) fn issue_json(&self, issue: &IssueRow) -> Value {
        let repo = self.repos.iter().find(|r| r.id == issue.repo_id);
        let full_name = repo
            .map(|r| format!("{}/{}", self.name_of(r.owner_id), r.name))
            .unwrap_or_default();
        let assignees: Vec<Value> = issue
            .assignees
            .iter()
            .map(|a| self.user_json_by_id(*a))
            .collect();
        let is_pull = self.is_pull(issue.id);
        let kind = if is_pull { "pulls" } else { "issues" };
        json!({
            "id": issue.id,
            "url": format!("{}api/v1/repos/{full_name}/issues/{}", self.root, issue.index),
            "html_url": format!("{}{full_name}/{kind}/{}", self.root, issue.index),
            "number": issue.index,
            "user": self.user_json_by_id(issue.poster_id),
            "original_author": "",
            "original_author_id": 0,
            "title": issue.title,
            "body": issue.body,
            "ref": "",
            "assets": [],
            "labels": [],
            "milestone": null,
            "assignee": assignees.first().cloned().unwrap_or(Value::Null),
            "assignees": if assignees.is_empty() { Value::Null } else { json!(assignees) },
            "state": if issue.closed { "closed" } else { "open" },
            "is_locked": false,
            "comments": issue.comments,
            "created_at": issue.created,
            "updated_at": issue.updated,
            "closed_at": null,
            "due_date": null,
            "time_estimate": 0,
            "pull_request": if is_pull {
                json!({
                    "merged": false,
                    "merged_at": null,
                    "draft": false,
                    "html_url": format!("{}{full_name}/pulls/{}", self.root, issue.index),
                })
            } else {
                Value::Null
            },
            "repository": repo.map_or(Value::Null, |r| json!({
                "id": r.id,
                "name": r.name,
                "owner": self.name_of(r.owner_id),
                "full_name": full_name,
            })),
            "pin_order": 0,
        })
    }

    fn comment_json(&self, comment: &CommentRow) -> Value {
        let issue = self.issues.iter().find(|i| i.id == comment.issue_id);
        let (issue_url, html_url, pull_url) = match issue {
            Some(issue) => {
                let json = self.issue_json(issue);
                let html = text(&json, "html_url");
                let pull = if self.is_pull(issue.id) {
                    html.clone()
                } else {
                    String::new()
                };
                (
                    text(&json, "url"),
                    format!("{html}#issuecomment-{}", comment.id),
                    pull,
                )
            }
            None => Default::default(),
        };
        json!({
            "id": comment.id,
            "html_url": html_url,
            "pull_request_url": pull_url,
            "issue_url": issue_url,
            "user": self.user_json_by_id(comment.poster_id),
            "original_author": "",
            "original_author_id": 0,
            "body": comment.body,
            "assets": [],
            "created_at": comment.created,
            "updated_at": comment.created,
        })
    }

    fn pull_json(&self, pull: &PullRow, viewer: Option<i64>) -> Value {
        let Some(issue) = self.issues.iter().find(|i| i.id == pull.issue_id) else {
            return Value::Null;
        };
        let Some(repo) = self.repos.iter().find(|r| r.id == issue.repo_id) else {
            return Value::Null;
        };
        let base = self.issue_json(issue);
        let full_name = format!("{}/{}", self.name_of(repo.owner_id), repo.name);
        let html = format!("{}{full_name}/pulls/{}", self.root, issue.index);
        let repo_json = self.repo_json(repo, viewer);
        let branch = |name: &str, sha: &str| {
            json!({
                "label": name,
                "ref": name,
                "sha": sha,
                "repo_id": repo.id,
                "repo": repo_json,
            })
        };
        json!({
            "id": pull.id,
            "url": format!("{}api/v1/repos/{full_name}/pulls/{}", self.root, issue.index),
            "number": issue.index,
            "user": base["user"],
            "title": issue.title,
            "body": issue.body,
            "labels": [],
            "milestone": null,
            "assignee": base["assignee"],
            "assignees": base["assignees"],
            "requested_reviewers": [],
            "requested_reviewers_teams": [],
            "state": base["state"],
            "draft": false,
            "is_locked": false,
            "comments": issue.comments,
            "review_comments": 0,
            "additions": pull.additions,
            "deletions": pull.deletions,
            "changed_files": pull.changed_files,
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "mergeable": true,
            "merged": false,
            "merged_at": null,
            "merge_commit_sha": null,
            "merged_by": null,
            "allow_maintainer_edit": false,
            "base": branch(&pull.base, &pull.base_sha),
            "head": branch(&pull.head, &pull.head_sha),
            "merge_base": pull.merge_base,
            "due_date": null,
            "created_at": issue.created,
            "updated_at": issue.updated,
            "closed_at": null,
            "pin_order": 0,
        })
    }

    // ----- set-up outside the API -----

    /// Makes a user directly, as `gitea admin user create` would.
    pub(super) fn add_user(
        &mut self,
        name: &str,
        password: &str,
        email: &str,
        admin: bool,
    ) -> Result<i64, String> {
        if !valid_username(name) || RESERVED_NAMES.contains(&name.to_lowercase().as_str()) {
            return Err(format!("Gitea refuses the user name {name:?}"));
        }
        if self.user(name).is_some() {
            return Err(format!("user already exists [name: {name}]"));
        }
        let id = self.next_id();
        let created = self.now();
        self.users.push(UserRow {
            id,
            name: name.to_owned(),
            full_name: String::new(),
            email: email.to_owned(),
            password: password.to_owned(),
            is_admin: admin,
            is_org: false,
            must_change_password: false,
            active: true,
            prohibit_login: false,
            restricted: false,
            visibility: "public".into(),
            website: String::new(),
            location: String::new(),
            description: String::new(),
            login_name: String::new(),
            created,
        });
        Ok(id)
    }

    /// Makes a token directly.
    pub(super) fn add_token(&mut self, user_id: i64, name: &str, scopes: &[&str]) -> String {
        let id = self.next_id();
        let created = self.now();
        let sha1 = new_sha1();
        self.tokens.push(TokenRow {
            id,
            user_id,
            name: name.to_owned(),
            sha1: sha1.clone(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            created,
            deleted: false,
        });
        sha1
    }

    /// Makes a repository: its row and its bare repository on disk, with
    /// a first commit holding a README when `auto_init`.
    pub(super) fn create_repo(
        &mut self,
        owner_id: i64,
        body: &Value,
    ) -> Result<i64, (StatusCode, String)> {
        let name = text(body, "name");
        let unprocessable = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, m);
        if name.is_empty() {
            return Err(unprocessable("[Name]: Required".into()));
        }
        if name.len() > 100
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(unprocessable("[Name]: AlphaDashDot".into()));
        }
        let lower = name.to_lowercase();
        if matches!(lower.as_str(), "." | ".." | "-")
            || [".git", ".wiki", ".rss", ".atom"]
                .iter()
                .any(|s| lower.ends_with(s))
        {
            return Err(unprocessable(format!(
                "repo name is reserved [name: {name}]"
            )));
        }
        if self
            .repos
            .iter()
            .any(|r| r.owner_id == owner_id && same(&r.name, &name))
        {
            return Err((
                StatusCode::CONFLICT,
                "The repository with the same name already exists.".into(),
            ));
        }
        let branch = match text(body, "default_branch") {
            b if b.is_empty() => "main".to_owned(),
            b => b,
        };
        let object_format = match text(body, "object_format_name") {
            f if f.is_empty() => "sha1".to_owned(),
            f => f,
        };
        let id = self.next_id();
        let created = self.now();
        let repo = RepoRow {
            id,
            owner_id,
            name: name.clone(),
            description: text(body, "description"),
            private: flag(body, "private").unwrap_or(false),
            default_branch: branch.clone(),
            object_format: object_format.clone(),
            created,
            last_index: 0,
        };
        let path = self.repo_path(&repo);
        let parent = path.parent().unwrap_or(&self.git_root).to_owned();
        std::fs::create_dir_all(&parent)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let dir = path.to_string_lossy().into_owned();
        run_git(
            &parent,
            &[
                "init",
                "--bare",
                "-q",
                "--initial-branch",
                &branch,
                "--object-format",
                &object_format,
                &dir,
            ],
        )
        .and_then(|_| run_git(&path, &["config", "http.receivepack", "true"]))
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))?;
        self.repos.push(repo);
        if flag(body, "auto_init") == Some(true) {
            let readme = format!("# {name}\n\n{}\n", text(body, "description"));
            self.commit_files(id, &[("README.md", readme.as_str())], "Initial commit")
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e))?;
        }
        Ok(id)
    }

    /// Commits `files` on top of the repository's default branch (or as
    /// its first commit); the new commit's id.
    pub(super) fn commit_files(
        &self,
        repo_id: i64,
        files: &[(&str, &str)],
        message: &str,
    ) -> Result<String, String> {
        let repo = self
            .repos
            .iter()
            .find(|r| r.id == repo_id)
            .ok_or("no such repository")?;
        let bare = self.repo_path(repo);
        let bare_text = bare.to_string_lossy().into_owned();
        let work = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = work.path();
        let branch = repo.default_branch.as_str();
        run_git(dir, &["init", "-q", "--object-format", &repo.object_format])?;
        if run_git(
            &bare,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ],
        )
        .is_ok()
        {
            run_git(dir, &["fetch", "-q", &bare_text, branch])?;
            run_git(dir, &["checkout", "-q", "-B", branch, "FETCH_HEAD"])?;
        } else {
            run_git(dir, &["checkout", "-q", "-b", branch])?;
        }
        for (path, contents) in files {
            let path = dir.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(path, contents).map_err(|e| e.to_string())?;
        }
        run_git(dir, &["add", "-A"])?;
        run_git(dir, &["commit", "-q", "--allow-empty", "-m", message])?;
        run_git(
            dir,
            &[
                "push",
                "-q",
                &bare_text,
                &format!("HEAD:refs/heads/{branch}"),
            ],
        )?;
        run_git(dir, &["rev-parse", "HEAD"])
    }

    /// Makes an issue directly.
    pub(super) fn add_issue(
        &mut self,
        repo_id: i64,
        poster_id: i64,
        title: &str,
        body: &str,
        assignees: Vec<i64>,
    ) -> i64 {
        let id = self.next_id();
        let created = self.now();
        let repo = self.repos.iter_mut().find(|r| r.id == repo_id);
        let index = repo.map_or(0, |r| {
            r.last_index += 1;
            r.last_index
        });
        self.issues.push(IssueRow {
            id,
            repo_id,
            index,
            poster_id,
            title: title.to_owned(),
            body: body.to_owned(),
            assignees,
            closed: false,
            comments: 0,
            created: created.clone(),
            updated: created,
        });
        index
    }

    /// Whether Gitea lets `user_id` be assigned issues of `repo`: a user
    /// (not an organisation) with write access.
    pub(super) fn can_be_assigned(&self, user_id: i64, repo: &RepoRow) -> bool {
        self.user_by_id(user_id).is_some_and(|u| !u.is_org) && self.access(Some(user_id), repo) >= 2
    }

    /// The payload Gitea sends for an issue event.
    pub(super) fn issue_payload(&self, issue_id: i64, action: &str, sender: i64) -> Value {
        let Some(issue) = self.issues.iter().find(|i| i.id == issue_id) else {
            return Value::Null;
        };
        let repo = self.repos.iter().find(|r| r.id == issue.repo_id);
        json!({
            "action": action,
            "number": issue.index,
            "issue": self.issue_json(issue),
            "repository": repo.map_or(Value::Null, |r| self.repo_json(r, Some(r.owner_id))),
            "sender": self.user_json_by_id(sender),
            "commit_id": "",
        })
    }

    // ----- the operations -----

    /// Gitea's answer to a call that passed the router's gates.
    pub(super) fn call(
        &mut self,
        operation: &str,
        doer: Option<&Doer>,
        path: &BTreeMap<String, String>,
        query: &BTreeMap<String, Vec<String>>,
        body: &Value,
    ) -> Answer {
        let param = |name: &str| path.get(name).cloned().unwrap_or_default();
        let viewer = doer.map(|d| d.id);
        let ok = |status: StatusCode, body: Value| (status, Some(body));
        match operation {
            "getVersion" => ok(StatusCode::OK, json!({ "version": VERSION })),
            "userGetCurrent" => match viewer.and_then(|id| self.user_by_id(id)) {
                Some(user) => ok(StatusCode::OK, self.user_json(user)),
                None => self.not_found(),
            },
            "adminCreateUser" => self.create_user(body),
            "adminEditUser" => self.edit_user(&param("username"), body),
            "userGet" => match self.user(&param("username")) {
                Some(user) => ok(StatusCode::OK, self.user_json(user)),
                None => self.not_found(),
            },
            "userCreateToken" => self.create_token(&param("username"), body),
            "userGetTokens" => {
                let Some(user) = self.user(&param("username")) else {
                    return self.not_found();
                };
                let tokens: Vec<Value> = self
                    .tokens
                    .iter()
                    .filter(|t| t.user_id == user.id && !t.deleted)
                    .map(|t| Self::token_json(t, false))
                    .collect();
                ok(StatusCode::OK, json!(tokens))
            }
            "userDeleteAccessToken" => self.delete_token(&param("username"), &param("token")),
            "orgCreate" => self.create_org(viewer.unwrap_or_default(), body),
            "orgGet" => match self.user(&param("org")).filter(|o| o.is_org) {
                Some(org)
                    if org.visibility != "private"
                        || viewer
                            .is_some_and(|v| self.is_admin(v) || self.is_org_member(v, org.id)) =>
                {
                    ok(StatusCode::OK, self.org_json(org))
                }
                _ => self.not_found(),
            },
            "orgListTeams" => {
                let Some(org) = self.user(&param("org")).filter(|o| o.is_org) else {
                    return self.not_found();
                };
                let v = viewer.unwrap_or_default();
                if !self.is_admin(v) && !self.is_org_member(v, org.id) {
                    return self.error(StatusCode::FORBIDDEN, "Must be an organization member");
                }
                let teams: Vec<Value> = self
                    .teams
                    .iter()
                    .filter(|t| t.org_id == org.id)
                    .map(|t| self.team_json(t))
                    .collect();
                ok(StatusCode::OK, json!(teams))
            }
            "orgAddTeamMember" | "orgListTeamMembers" => {
                let id: i64 = param("id").parse().unwrap_or_default();
                let Some(team) = self.teams.iter().find(|t| t.id == id).cloned() else {
                    return self.not_found();
                };
                let v = viewer.unwrap_or_default();
                let owner = self.is_admin(v) || self.is_org_owner(v, team.org_id);
                if operation == "orgListTeamMembers" {
                    if !owner && !team.members.contains(&v) {
                        return self.not_found();
                    }
                    let members: Vec<Value> = team
                        .members
                        .iter()
                        .map(|m| self.user_json_by_id(*m))
                        .collect();
                    return ok(StatusCode::OK, json!(members));
                }
                if !owner {
                    return if self.is_org_member(v, team.org_id) {
                        self.error(StatusCode::FORBIDDEN, "Must be an organization owner")
                    } else {
                        self.not_found()
                    };
                }
                let Some(user) = self.user(&param("username")).filter(|u| !u.is_org) else {
                    return self.not_found();
                };
                let user_id = user.id;
                if let Some(team) = self.teams.iter_mut().find(|t| t.id == id)
                    && !team.members.contains(&user_id)
                {
                    team.members.push(user_id);
                }
                (StatusCode::NO_CONTENT, None)
            }
            "adminListHooks" => {
                let kind = query
                    .get("type")
                    .and_then(|v| v.first())
                    .map_or("system", String::as_str);
                let hooks: Vec<Value> = self
                    .hooks
                    .iter()
                    .filter(|h| match kind {
                        "all" => true,
                        "default" => !h.system,
                        _ => h.system,
                    })
                    .map(Self::hook_json)
                    .collect();
                ok(StatusCode::OK, json!(hooks))
            }
            "adminCreateHook" => self.create_hook(body),
            "adminGetHook" => {
                let id: i64 = param("id").parse().unwrap_or_default();
                match self.hooks.iter().find(|h| h.id == id) {
                    Some(hook) => ok(StatusCode::OK, Self::hook_json(hook)),
                    None => self.not_found(),
                }
            }
            "adminEditHook" => self.edit_hook(param("id").parse().unwrap_or_default(), body),
            "adminDeleteHook" => {
                let id: i64 = param("id").parse().unwrap_or_default();
                let before = self.hooks.len();
                self.hooks.retain(|h| h.id != id);
                if self.hooks.len() == before {
                    self.not_found()
                } else {
                    (StatusCode::NO_CONTENT, None)
                }
            }
            "createOrgRepo" => {
                let Some(org) = self.user(&param("org")).filter(|o| o.is_org) else {
                    return self.not_found();
                };
                let (org_id, org_name) = (org.id, org.name.clone());
                let v = viewer.unwrap_or_default();
                if !self.is_admin(v) && !self.is_org_owner(v, org_id) {
                    return self.error(
                        StatusCode::FORBIDDEN,
                        format!("Given user is not allowed to create repository in organization {org_name}."),
                    );
                }
                self.answer_new_repo(org_id, body, viewer)
            }
            "adminCreateRepo" => {
                let Some(owner) = self.user(&param("username")) else {
                    return self.not_found();
                };
                let owner_id = owner.id;
                self.answer_new_repo(owner_id, body, viewer)
            }
            "repoGet" => match self.readable_repo(&param("owner"), &param("repo"), viewer) {
                Some(repo) => ok(StatusCode::OK, self.repo_json(repo, viewer)),
                None => self.not_found(),
            },
            "issueCreateIssue" => self.create_issue(&param("owner"), &param("repo"), viewer, body),
            "issueGetIssue" => match self.find_issue(path, viewer) {
                Some(issue) => ok(StatusCode::OK, self.issue_json(issue)),
                None => self.not_found(),
            },
            "issueCreateComment" => {
                let Some(issue_id) = self.find_issue(path, viewer).map(|i| i.id) else {
                    return self.not_found();
                };
                let comment =
                    self.add_comment(issue_id, viewer.unwrap_or_default(), &text(body, "body"));
                ok(StatusCode::CREATED, comment)
            }
            "repoGetRepoPermissions" => self.permission(
                &param("owner"),
                &param("repo"),
                &param("collaborator"),
                viewer,
            ),
            "issueGetComments" => {
                let Some(issue_id) = self.find_issue(path, viewer).map(|i| i.id) else {
                    return self.not_found();
                };
                let comments: Vec<Value> = self
                    .comments
                    .iter()
                    .filter(|c| c.issue_id == issue_id)
                    .map(|c| self.comment_json(c))
                    .collect();
                ok(StatusCode::OK, json!(comments))
            }
            "repoCreatePullRequest" => {
                self.create_pull(&param("owner"), &param("repo"), viewer, body)
            }
            "repoListPullRequests" => {
                let Some(repo_id) = self
                    .readable_repo(&param("owner"), &param("repo"), viewer)
                    .map(|r| r.id)
                else {
                    return self.not_found();
                };
                let first = |name: &str| query.get(name).and_then(|v| v.first()).cloned();
                let state = first("state").unwrap_or_else(|| "open".into());
                let base = first("base_branch");
                let poster = first("poster");
                let mut pulls: Vec<Value> = self
                    .pulls
                    .iter()
                    .rev()
                    .filter(|p| {
                        let Some(issue) = self.issues.iter().find(|i| i.id == p.issue_id) else {
                            return false;
                        };
                        issue.repo_id == repo_id
                            && match state.as_str() {
                                "all" => true,
                                "closed" => issue.closed,
                                _ => !issue.closed,
                            }
                            && base.as_ref().is_none_or(|b| *b == p.base)
                            && poster
                                .as_ref()
                                .is_none_or(|u| same(&self.name_of(issue.poster_id), u))
                    })
                    .map(|p| self.pull_json(p, viewer))
                    .collect();
                let limit = first("limit")
                    .and_then(|l| l.parse::<usize>().ok())
                    .filter(|l| *l > 0)
                    .unwrap_or(30)
                    .min(50);
                let page = first("page")
                    .and_then(|p| p.parse::<usize>().ok())
                    .unwrap_or(1)
                    .max(1);
                pulls = pulls
                    .into_iter()
                    .skip((page - 1) * limit)
                    .take(limit)
                    .collect();
                ok(StatusCode::OK, json!(pulls))
            }
            "repoGetPullRequest" => {
                let Some(issue_id) = self.find_issue(path, viewer).map(|i| i.id) else {
                    return self.not_found();
                };
                match self.pulls.iter().find(|p| p.issue_id == issue_id) {
                    Some(pull) => ok(StatusCode::OK, self.pull_json(pull, viewer)),
                    None => self.not_found(),
                }
            }
            other => self.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the fake Gitea does not implement {other}; add it to the test kit"),
            ),
        }
    }

    /// Adds a comment by `poster` to issue `issue_id`; its JSON.
    pub(super) fn add_comment(&mut self, issue_id: i64, poster: i64, body: &str) -> Value {
        let id = self.next_id();
        let created = self.now();
        let comment = CommentRow {
            id,
            issue_id,
            poster_id: poster,
            body: body.to_owned(),
            created: created.clone(),
        };
        if let Some(issue) = self.issues.iter_mut().find(|i| i.id == issue_id) {
            issue.comments += 1;
            issue.updated = created;
        }
        let answer = self.comment_json(&comment);
        self.comments.push(comment);
        answer
    }

    /// The payload Gitea sends for a new comment on an issue.
    pub(super) fn comment_payload(&self, issue_id: i64, comment: Value, sender: i64) -> Value {
        let mut payload = self.issue_payload(issue_id, "created", sender);
        if let Some(fields) = payload.as_object_mut() {
            fields.remove("number");
            fields.remove("commit_id");
            fields.insert("comment".into(), comment);
            fields.insert("is_pull".into(), json!(self.is_pull(issue_id)));
        }
        payload
    }

    /// `GET /repos/{owner}/{repo}/collaborators/{collaborator}/permission`,
    /// as Gitea's `GetRepoPermissions`: a site admin, a repository admin,
    /// or the collaborator asking about themselves may ask; the level is
    /// `owner` for the repository's owner (or an owner of its
    /// organisation), else `admin`, `write`, `read` or `none`.
    fn permission(
        &self,
        owner: &str,
        repo: &str,
        collaborator: &str,
        viewer: Option<i64>,
    ) -> Answer {
        let Some(repo) = self.readable_repo(owner, repo, viewer) else {
            return self.not_found();
        };
        let Some(doer) = viewer.and_then(|id| self.user_by_id(id)) else {
            return self.not_found();
        };
        if !self.is_admin(doer.id)
            && !same(&doer.name, collaborator)
            && self.access(Some(doer.id), repo) < 3
        {
            return self.error(
                StatusCode::FORBIDDEN,
                "Only admins can query all permissions, repo admins can query all repo permissions, collaborators can query only their own",
            );
        }
        let Some(user) = self.user(collaborator).filter(|u| !u.is_org) else {
            return self.not_found();
        };
        let level = if repo.owner_id == user.id || self.is_org_owner(user.id, repo.owner_id) {
            "owner"
        } else {
            match self.access(Some(user.id), repo) {
                3 => "admin",
                2 => "write",
                1 => "read",
                _ => "none",
            }
        };
        (
            StatusCode::OK,
            Some(json!({
                "permission": level,
                "role_name": level,
                "user": self.user_json(user),
            })),
        )
    }

    fn readable_repo(&self, owner: &str, name: &str, viewer: Option<i64>) -> Option<&RepoRow> {
        self.repo(owner, name)
            .filter(|r| self.access(viewer, r) >= 1)
    }

    fn find_issue(
        &self,
        path: &BTreeMap<String, String>,
        viewer: Option<i64>,
    ) -> Option<&IssueRow> {
        let repo = self.readable_repo(path.get("owner")?, path.get("repo")?, viewer)?;
        let index: i64 = path.get("index")?.parse().ok()?;
        self.issues
            .iter()
            .find(|i| i.repo_id == repo.id && i.index == index)
    }

    fn answer_new_repo(&mut self, owner_id: i64, body: &Value, viewer: Option<i64>) -> Answer {
        match self.create_repo(owner_id, body) {
            Ok(id) => {
                let repo = self.repos.iter().find(|r| r.id == id).cloned();
                match repo {
                    Some(repo) => (StatusCode::CREATED, Some(self.repo_json(&repo, viewer))),
                    None => self.not_found(),
                }
            }
            Err((status, message)) => self.error(status, message),
        }
    }

    /// Name and e-mail checks shared by users and organisations.
    fn check_new_name(&self, name: &str) -> Option<Answer> {
        if !valid_username(name) {
            return Some(self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("name is invalid [{name}]: must be valid alpha or numeric or dash(-_) or dot characters"),
            ));
        }
        if RESERVED_NAMES.contains(&name.to_lowercase().as_str()) {
            return Some(self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("name is reserved [name: {name}]"),
            ));
        }
        if self.user(name).is_some() {
            return Some(self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("user already exists [name: {name}]"),
            ));
        }
        None
    }

    fn create_user(&mut self, body: &Value) -> Answer {
        let name = text(body, "username");
        let email = text(body, "email");
        let password = text(body, "password");
        if name.is_empty() || email.is_empty() {
            return self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "[Username Email]: Required",
            );
        }
        if body["source_id"].as_i64().unwrap_or(0) != 0 {
            return self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("login source does not exist [id: {}]", body["source_id"]),
            );
        }
        if password.chars().count() < MIN_PASSWORD_LENGTH {
            return self.error(StatusCode::BAD_REQUEST, "PasswordIsRequired");
        }
        if let Some(refusal) = self.check_new_name(&name) {
            return refusal;
        }
        if !valid_email(&email) {
            return self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("e-mail invalid [email: {email}]"),
            );
        }
        if self.users.iter().any(|u| same(&u.email, &email)) {
            return self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("e-mail already in use [email: {email}]"),
            );
        }
        let id = self.next_id();
        let created = self.now();
        let user = UserRow {
            id,
            name,
            full_name: text(body, "full_name"),
            email,
            password,
            is_admin: false,
            is_org: false,
            must_change_password: flag(body, "must_change_password").unwrap_or(true),
            active: true,
            prohibit_login: false,
            restricted: flag(body, "restricted").unwrap_or(false),
            visibility: match text(body, "visibility") {
                v if v.is_empty() => "public".into(),
                v => v,
            },
            website: String::new(),
            location: String::new(),
            description: String::new(),
            login_name: text(body, "login_name"),
            created,
        };
        let answer = self.user_json(&user);
        self.users.push(user);
        (StatusCode::CREATED, Some(answer))
    }

    fn edit_user(&mut self, name: &str, body: &Value) -> Answer {
        let Some(index) = self.users.iter().position(|u| same(&u.name, name)) else {
            return self.not_found();
        };
        let password = text(body, "password");
        if !password.is_empty() && password.chars().count() < MIN_PASSWORD_LENGTH {
            return self.error(
                StatusCode::BAD_REQUEST,
                format!("password must be at least {MIN_PASSWORD_LENGTH} characters"),
            );
        }
        if let Some(email) = body["email"].as_str() {
            if !valid_email(email) {
                return self.error(
                    StatusCode::BAD_REQUEST,
                    format!("e-mail invalid [email: {email}]"),
                );
            }
            if self
                .users
                .iter()
                .any(|u| same(&u.email, email) && u.id != self.users[index].id)
            {
                return self.error(
                    StatusCode::BAD_REQUEST,
                    format!("e-mail already in use [email: {email}]"),
                );
            }
        }
        let user = &mut self.users[index];
        if !password.is_empty() {
            user.password = password;
        }
        if let Some(email) = body["email"].as_str() {
            user.email = email.to_owned();
        }
        let set = |field: &mut bool, name: &str| {
            if let Some(value) = flag(body, name) {
                *field = value;
            }
        };
        set(&mut user.must_change_password, "must_change_password");
        set(&mut user.prohibit_login, "prohibit_login");
        set(&mut user.is_admin, "admin");
        set(&mut user.active, "active");
        set(&mut user.restricted, "restricted");
        for (field, name) in [
            (&mut user.full_name, "full_name"),
            (&mut user.website, "website"),
            (&mut user.location, "location"),
            (&mut user.description, "description"),
        ] {
            if let Some(value) = body[name].as_str() {
                *field = value.to_owned();
            }
        }
        if let Some(login_name) = body["login_name"].as_str() {
            user.login_name = login_name.to_owned();
        }
        match text(body, "visibility") {
            v if v.is_empty() => {}
            v => user.visibility = v,
        }
        let user = self.users[index].clone();
        (StatusCode::OK, Some(self.user_json(&user)))
    }

    fn create_token(&mut self, owner: &str, body: &Value) -> Answer {
        let Some(user_id) = self.user(owner).map(|u| u.id) else {
            return self.not_found();
        };
        let name = text(body, "name");
        if name.is_empty() {
            return self.error(StatusCode::UNPROCESSABLE_ENTITY, "[Name]: Required");
        }
        if self
            .tokens
            .iter()
            .any(|t| t.user_id == user_id && !t.deleted && t.name == name)
        {
            return self.error(
                StatusCode::BAD_REQUEST,
                "access token name has been used already",
            );
        }
        let mut scopes: Vec<String> = Vec::new();
        for scope in body["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let known = scope == "all"
                || scope == "public-only"
                || scope.split_once(':').is_some_and(|(level, category)| {
                    matches!(level, "read" | "write") && SCOPE_CATEGORIES.contains(&category)
                });
            if !known {
                return self.error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid access token scope provided: access token scope `{scope}` is not valid"),
                );
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if scopes.iter().all(|s| s == "public-only") {
            return self.error(StatusCode::BAD_REQUEST, "access token must have a scope");
        }
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let sha1 = self.add_token(user_id, &name, &scopes);
        let token = self.tokens.iter().find(|t| t.sha1 == sha1);
        (
            StatusCode::CREATED,
            token.map(|t| {
                let mut answer = Self::token_json(t, true);
                if let Some(fields) = answer.as_object_mut() {
                    fields.remove("created_at");
                    fields.remove("last_used_at");
                }
                answer
            }),
        )
    }

    fn delete_token(&mut self, owner: &str, token: &str) -> Answer {
        let Some(user_id) = self.user(owner).map(|u| u.id) else {
            return self.not_found();
        };
        let by_id = token.parse::<i64>().ok().filter(|id| *id != 0);
        let matching: Vec<usize> = self
            .tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.user_id == user_id
                    && !t.deleted
                    && match by_id {
                        Some(id) => t.id == id,
                        None => t.name == token,
                    }
            })
            .map(|(i, _)| i)
            .collect();
        match matching.as_slice() {
            [] => self.not_found(),
            [one] => {
                self.tokens[*one].deleted = true;
                (StatusCode::NO_CONTENT, None)
            }
            _ => self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("multiple matches for token name '{token}'"),
            ),
        }
    }

    fn create_org(&mut self, creator: i64, body: &Value) -> Answer {
        let name = text(body, "username");
        if name.is_empty() {
            return self.error(StatusCode::UNPROCESSABLE_ENTITY, "[UserName]: Required");
        }
        if let Some(refusal) = self.check_new_name(&name) {
            return refusal;
        }
        let id = self.next_id();
        let created = self.now();
        let org = UserRow {
            id,
            name,
            full_name: text(body, "full_name"),
            email: text(body, "email"),
            password: String::new(),
            is_admin: false,
            is_org: true,
            must_change_password: false,
            active: true,
            prohibit_login: false,
            restricted: false,
            visibility: match text(body, "visibility") {
                v if v.is_empty() => "public".into(),
                v => v,
            },
            website: text(body, "website"),
            location: text(body, "location"),
            description: text(body, "description"),
            login_name: String::new(),
            created,
        };
        let answer = self.org_json(&org);
        self.users.push(org);
        let team = self.next_id();
        self.teams.push(TeamRow {
            id: team,
            org_id: id,
            name: "Owners".into(),
            permission: "owner".into(),
            members: vec![creator],
        });
        (StatusCode::CREATED, Some(answer))
    }

    fn create_hook(&mut self, body: &Value) -> Answer {
        let config = &body["config"];
        let kind = text(body, "type");
        let unprocessable = |s: &Self, m: String| s.error(StatusCode::UNPROCESSABLE_ENTITY, m);
        for name in ["url", "content_type"] {
            if config.get(name).is_none() {
                return unprocessable(self, format!("Missing config option: {name}"));
            }
        }
        let content_type = text(config, "content_type");
        if !matches!(content_type.as_str(), "json" | "form") {
            return unprocessable(self, "Invalid content type".into());
        }
        let url = text(config, "url");
        if reqwest::Url::parse(&url)
            .ok()
            .is_none_or(|u| !matches!(u.scheme(), "http" | "https"))
        {
            return unprocessable(self, "Invalid url".into());
        }
        let system = match config["is_system_webhook"].as_str().unwrap_or_default() {
            "" => false,
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return unprocessable(self, "Invalid is_system_webhook value".into()),
        };
        let id = self.next_id();
        let created = self.now();
        let hook = HookRow {
            id,
            system,
            kind,
            name: text(body, "name"),
            url,
            content_type,
            secret: text(config, "secret"),
            events: expand_events(&body["events"]),
            active: flag(body, "active").unwrap_or(false),
            branch_filter: text(body, "branch_filter"),
            authorization_header: text(body, "authorization_header"),
            created: created.clone(),
            updated: created,
        };
        let answer = Self::hook_json(&hook);
        self.hooks.push(hook);
        (StatusCode::CREATED, Some(answer))
    }

    fn edit_hook(&mut self, id: i64, body: &Value) -> Answer {
        let Some(index) = self.hooks.iter().position(|h| h.id == id) else {
            // Gitea's GetSystemOrDefaultWebhook fails, and the handler
            // answers every failure 500.
            return self.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("webhook does not exist [id: {id}]"),
            );
        };
        let config = &body["config"];
        if let Some(url) = config["url"].as_str()
            && reqwest::Url::parse(url)
                .ok()
                .is_none_or(|u| !matches!(u.scheme(), "http" | "https"))
        {
            return self.error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid url");
        }
        if let Some(content_type) = config["content_type"].as_str()
            && !matches!(content_type, "json" | "form")
        {
            return self.error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid content type");
        }
        let updated = self.now();
        let hook = &mut self.hooks[index];
        if let Some(url) = config["url"].as_str() {
            hook.url = url.to_owned();
        }
        if let Some(content_type) = config["content_type"].as_str() {
            hook.content_type = content_type.to_owned();
        }
        // Gitea's editHook does not touch the secret, and always replaces
        // the events, the branch filter and the authorization header.
        hook.events = expand_events(&body["events"]);
        hook.branch_filter = text(body, "branch_filter");
        hook.authorization_header = text(body, "authorization_header");
        if let Some(active) = flag(body, "active") {
            hook.active = active;
        }
        if let Some(name) = body["name"].as_str() {
            hook.name = name.to_owned();
        }
        hook.updated = updated;
        (StatusCode::OK, Some(Self::hook_json(&self.hooks[index])))
    }

    fn create_issue(
        &mut self,
        owner: &str,
        name: &str,
        viewer: Option<i64>,
        body: &Value,
    ) -> Answer {
        let Some(repo) = self.readable_repo(owner, name, viewer).cloned() else {
            return self.not_found();
        };
        let title = text(body, "title");
        if title.is_empty() {
            return self.error(StatusCode::UNPROCESSABLE_ENTITY, "[Title]: Required");
        }
        let mut assignees = Vec::new();
        if self.access(viewer, &repo) >= 2 {
            let names = body["assignee"]
                .as_str()
                .filter(|a| !a.is_empty())
                .into_iter()
                .chain(
                    body["assignees"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                );
            for assignee in names {
                let Some(user) = self.user(assignee) else {
                    return self.error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("Assignee does not exist: [name: {assignee}]"),
                    );
                };
                if !self.can_be_assigned(user.id, &repo) {
                    return self.error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "user doesn't have access to repo [user_id: {}, repo_name: {}]",
                            user.id, repo.name
                        ),
                    );
                }
                if !assignees.contains(&user.id) {
                    assignees.push(user.id);
                }
            }
        }
        let index = self.add_issue(
            repo.id,
            viewer.unwrap_or_default(),
            &title,
            &text(body, "body"),
            assignees,
        );
        let issue = self
            .issues
            .iter()
            .find(|i| i.repo_id == repo.id && i.index == index)
            .cloned();
        match issue {
            Some(issue) => (StatusCode::CREATED, Some(self.issue_json(&issue))),
            None => self.not_found(),
        }
    }

    fn create_pull(
        &mut self,
        owner: &str,
        name: &str,
        viewer: Option<i64>,
        body: &Value,
    ) -> Answer {
        let head = text(body, "head");
        let base = text(body, "base");
        if head == base {
            return self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid PullRequest: There are no changes between the head and the base",
            );
        }
        let Some(repo) = self.readable_repo(owner, name, viewer).cloned() else {
            return self.not_found();
        };
        // `owner:branch` names a fork's branch; only the repository's own
        // owner is served here.
        let head_branch = match head.split_once(':') {
            None => head.clone(),
            Some((head_owner, branch)) if same(head_owner, &self.name_of(repo.owner_id)) => {
                branch.to_owned()
            }
            Some(_) => return self.not_found(),
        };
        let path = self.repo_path(&repo);
        let sha = |branch: &str| {
            run_git(
                &path,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{branch}^{{commit}}"),
                ],
            )
            .ok()
        };
        let (Some(head_sha), Some(base_sha)) = (sha(&head_branch), sha(&base)) else {
            return self.not_found();
        };
        let existing = self.pulls.iter().find(|p| {
            p.head == head_branch
                && p.base == base
                && self
                    .issues
                    .iter()
                    .any(|i| i.id == p.issue_id && i.repo_id == repo.id && !i.closed)
        });
        if let Some(existing) = existing {
            let index = self
                .issues
                .iter()
                .find(|i| i.id == existing.issue_id)
                .map_or(0, |i| i.index);
            return self.error(
                StatusCode::CONFLICT,
                format!(
                    "pull request already exists for these targets [id: {}, issue_id: {index}, head_repo_id: {}, base_repo_id: {}, head_branch: {head_branch}, base_branch: {base}]",
                    existing.id, repo.id, repo.id
                ),
            );
        }
        let merge_base = run_git(&path, &["merge-base", &base_sha, &head_sha]).unwrap_or_default();
        if merge_base == head_sha {
            return self.error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid PullRequest: There are no changes between the head and the base",
            );
        }
        let (mut additions, mut deletions, mut changed_files) = (0, 0, 0);
        let range = format!("{base_sha}...{head_sha}");
        for line in run_git(&path, &["diff", "--numstat", &range])
            .unwrap_or_default()
            .lines()
        {
            let mut parts = line.split_whitespace();
            additions += parts
                .next()
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0);
            deletions += parts
                .next()
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0);
            changed_files += 1;
        }
        let poster = viewer.unwrap_or_default();
        let mut assignees = Vec::new();
        for assignee in body["assignee"]
            .as_str()
            .filter(|a| !a.is_empty())
            .into_iter()
            .chain(
                body["assignees"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str),
            )
        {
            match self.user(assignee) {
                Some(user) if self.can_be_assigned(user.id, &repo) => {
                    if !assignees.contains(&user.id) {
                        assignees.push(user.id);
                    }
                }
                Some(user) => {
                    return self.error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "user doesn't have access to repo [user_id: {}, repo_name: {}]",
                            user.id, repo.name
                        ),
                    );
                }
                None => {
                    return self.error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("Assignee does not exist: [name: {assignee}]"),
                    );
                }
            }
        }
        let index = self.add_issue(
            repo.id,
            poster,
            &text(body, "title"),
            &text(body, "body"),
            assignees,
        );
        let Some(issue_id) = self
            .issues
            .iter()
            .find(|i| i.repo_id == repo.id && i.index == index)
            .map(|i| i.id)
        else {
            return self.not_found();
        };
        // Gitea keeps every pull request's head under refs/pull/.
        let _ = run_git(
            &path,
            &["update-ref", &format!("refs/pull/{index}/head"), &head_sha],
        );
        let id = self.next_id();
        let pull = PullRow {
            id,
            issue_id,
            head: head_branch,
            base,
            head_sha,
            base_sha,
            merge_base,
            additions,
            deletions,
            changed_files,
        };
        let answer = self.pull_json(&pull, viewer);
        self.pulls.push(pull);
        (StatusCode::CREATED, Some(answer))
    }
}

/// A hook's event list as Gitea stores and lists it: `issues` and
/// `pull_request` stand for their whole families, and no events at all
/// means `push`.
fn expand_events(events: &Value) -> Vec<String> {
    let mut given: Vec<String> = events
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_lowercase)
        .collect();
    if given.is_empty() {
        given.push("push".into());
    }
    let has = |e: &str| given.iter().any(|g| g == e);
    HOOK_EVENTS
        .iter()
        .filter(|event| {
            let event = **event;
            match event {
                "issues" => has("issues") || has("issues_only"),
                "issue_assign" | "issue_label" | "issue_milestone" | "issue_comment" => {
                    has(event) || has("issues")
                }
                "pull_request" => has("pull_request") || has("pull_request_only"),
                "pull_request_review_approved"
                | "pull_request_review_rejected"
                | "pull_request_review_comment" => {
                    has("pull_request_review") || has("pull_request")
                }
                e if e.starts_with("pull_request_") => has(e) || has("pull_request"),
                e => has(e),
            }
        })
        .map(|e| (*e).to_owned())
        .collect()
}

/// The `X-Gitea-Event` of an event type.
pub(super) fn event_header(event_type: &str) -> &str {
    match event_type {
        "issue_assign" | "issue_label" | "issue_milestone" => "issues",
        "pull_request_comment" => "issue_comment",
        "pull_request_review_approved" => "pull_request_approved",
        "pull_request_review_rejected" => "pull_request_rejected",
        "pull_request_review_comment" => "pull_request_comment",
        e if e.starts_with("pull_request_") => "pull_request",
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_giteas_rules() {
        assert!(valid_username("yard-bot"));
        assert!(valid_username("a.b_c"));
        assert!(!valid_username("-a"));
        assert!(!valid_username("a--b"));
        assert!(!valid_username("a."));
        assert!(!valid_username("a b"));
    }

    #[test]
    fn events_expand_like_giteas() {
        assert_eq!(expand_events(&Value::Null), vec!["push"]);
        let issues = expand_events(&json!(["issues"]));
        assert_eq!(
            issues,
            vec![
                "issues",
                "issue_assign",
                "issue_label",
                "issue_milestone",
                "issue_comment"
            ]
        );
        assert!(expand_events(&json!(["pull_request"])).contains(&"pull_request_sync".to_owned()));
        assert_eq!(event_header("issue_assign"), "issues");
    }
}
