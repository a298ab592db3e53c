//! A fake Gitea, for testing the yard's use of a forge without one: a small
//! stateful HTTP server on an ephemeral loopback port that answers the part
//! of Gitea's REST API the yard calls (first-boot set-up of users, tokens,
//! organisations, teams and system webhooks; repositories, issues, comments
//! and pull requests), serves Git over HTTP for its repositories, and sends
//! webhooks when a test asks.
//!
//! It is a contract fake. Every API request is checked against Gitea's own
//! Swagger 2.0 document (vendored unmodified in `specs/gitea-swagger.json`):
//! the path and method must be documented, path and query parameters must
//! be of their type, a body must be JSON of its schema with its required
//! properties and no property the document does not know. A request that
//! breaks the document is recorded: [`GiteaFake::violations`] lists them,
//! [`GiteaFake::assert_no_violations`] fails on them, and dropping a fake
//! that recorded some fails the test. Where Gitea would refuse such a
//! request (a body that is not JSON or whose fields have the wrong type, a
//! missing required field, a value outside an enum) the fake answers 422
//! as Gitea's binding does; a field Gitea does not know is served as Gitea
//! serves it, ignored, but recorded all the same. The fake's own answers
//! are checked too: a success must be a status the operation documents,
//! with a body of the documented schema and nothing more; an error is
//! Gitea's `{message, url}`.
//!
//! Authentication is Gitea's: `Authorization: token <sha1>` (or `Bearer`,
//! or the deprecated `token`/`access_token` query parameters), or Basic
//! with a password or a token as the password. The token routes
//! (`/users/{username}/tokens`) take Basic only, as that user or a site
//! admin; admin routes take a site admin; a token needs the scope category
//! of the route (`write:` for writes); a user who must change their
//! password is refused everything (403). [`GiteaFake::start`] makes the
//! initial site admin and a token with scope `all` for it,
//! [`GiteaFake::admin_token`].
//!
//! Git over HTTP (`/{owner}/{repo}.git/info/refs`, `git-upload-pack`,
//! `git-receive-pack`) is the real `git http-backend` over a bare
//! repository in a temporary directory, behind Basic authentication
//! (`user:token` or `user:password`; 401 with `WWW-Authenticate: Basic`
//! without). These routes are not in the document and are not checked.
//!
//! Faults on demand: [`GiteaFake::fail_next`] answers an error status for
//! the next calls of an operation (or a path prefix) and changes nothing;
//! [`GiteaFake::fail_after_next`] does the call, then answers the error
//! anyway, as a forge that crashed before answering would.
//!
//! Webhooks go out only when a test asks: [`GiteaFake::deliver`] sends a
//! payload to every active system hook subscribed to the event, and
//! [`GiteaFake::assign_issue`] assigns an issue and sends Gitea's
//! `issues`/`assigned` payload. Only `gitea` and `gogs` hooks are sent;
//! default (non-system) hooks never are.
//!
//! Run the `git` CLI against the fake from a multi-threaded runtime (or
//! `spawn_blocking`): the fake serves from the test's runtime.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as Extract};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

mod document;
mod forge;
mod schema;
mod smart_http;
mod webhooks;

pub use document::gitea_swagger;

use document::Lookup;
use forge::{Answer, Doer, Forge, Gate};
use smart_http::GitRequest;

/// A user (or organisation) in the fake, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    pub id: i64,
    pub login: String,
    pub email: String,
    pub full_name: String,
    pub password: String,
    pub is_admin: bool,
    pub is_org: bool,
    pub must_change_password: bool,
    pub active: bool,
    pub prohibit_login: bool,
}

/// An access token in the fake; deleted ones stay, not `valid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeToken {
    pub id: i64,
    pub user: String,
    pub name: String,
    pub sha1: String,
    pub scopes: Vec<String>,
    pub valid: bool,
}

/// A team of an organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTeam {
    pub id: i64,
    pub org: String,
    pub name: String,
    pub permission: String,
    pub members: Vec<String>,
}

/// An organisation and its teams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeOrg {
    pub id: i64,
    pub name: String,
    pub full_name: String,
    pub visibility: String,
    pub teams: Vec<FakeTeam>,
}

/// A webhook, with what the API never shows (its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeHook {
    pub id: i64,
    /// A system hook (`config.is_system_webhook` was true) rather than a
    /// default one.
    pub system: bool,
    /// `gitea`, `slack`, …
    pub kind: String,
    pub url: String,
    pub content_type: String,
    pub secret: String,
    /// The event types it is sent for, as Gitea lists them.
    pub events: Vec<String>,
    pub active: bool,
    pub branch_filter: String,
    pub authorization_header: String,
}

/// A repository, and where its bare copy lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRepo {
    pub id: i64,
    pub owner: String,
    pub name: String,
    pub private: bool,
    pub default_branch: String,
    pub path: PathBuf,
}

/// An issue (or a pull request's issue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIssue {
    pub id: i64,
    pub number: i64,
    pub title: String,
    pub body: String,
    pub poster: String,
    pub assignees: Vec<String>,
    pub closed: bool,
    pub is_pull: bool,
}

/// A comment on an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeComment {
    pub id: i64,
    pub issue: i64,
    pub user: String,
    pub body: String,
}

/// A pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePull {
    pub id: i64,
    pub number: i64,
    pub title: String,
    pub body: String,
    pub poster: String,
    pub head: String,
    pub base: String,
    pub head_sha: String,
    pub closed: bool,
}

/// One webhook sent: where, what, and what the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub hook_id: i64,
    pub url: String,
    /// `X-Gitea-Event`, e.g. `issues`.
    pub event: String,
    /// `X-Gitea-Event-Type`, e.g. `issue_assign`.
    pub event_type: String,
    /// `X-Gitea-Delivery`, a UUID.
    pub id: String,
    /// `X-Gitea-Signature`: hex HMAC-SHA256 of `body` with the secret.
    pub signature: String,
    /// The raw JSON body.
    pub body: String,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// A fake Gitea serving on loopback until dropped.
#[derive(Debug)]
pub struct GiteaFake {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    admin: String,
    admin_password: String,
    admin_token: String,
    state: Mutex<State>,
    /// The bare repositories; removed with the fake.
    _git_root: tempfile::TempDir,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Fault {
    target: String,
    status: u16,
    times: u32,
    /// Do the call, then answer the error.
    after: bool,
}

#[derive(Debug)]
struct State {
    forge: Forge,
    violations: Vec<String>,
    calls: Vec<String>,
    faults: Vec<Fault>,
    deliveries: Vec<Delivery>,
}

impl State {
    /// The fault for this call, if one is armed.
    fn take_fault(&mut self, operation: &str, method: &Method, path: &str) -> Option<(u16, bool)> {
        let at = self.faults.iter().position(|f| {
            if f.target == operation {
                return true;
            }
            let (verb, prefix) = match f.target.split_once(' ') {
                Some((verb, prefix)) => (Some(verb), prefix),
                None => (None, f.target.as_str()),
            };
            prefix.starts_with('/')
                && path.starts_with(prefix)
                && verb.is_none_or(|v| v.eq_ignore_ascii_case(method.as_str()))
        })?;
        let fault = &mut self.faults[at];
        let answer = (fault.status, fault.after);
        fault.times -= 1;
        if fault.times == 0 {
            self.faults.remove(at);
        }
        Some(answer)
    }
}

impl GiteaFake {
    /// Starts a fake Gitea whose only user is the site admin `admin` with
    /// `password`, who also has a token with scope `all`
    /// ([`GiteaFake::admin_token`]). Gitea reserves some names (`admin`
    /// among them); the fake refuses them as Gitea would.
    pub async fn start(admin: &str, password: &str) -> Self {
        let _ = gitea_swagger();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Gitea");
        let addr = listener.local_addr().expect("the fake Gitea's address");
        let git_root = tempfile::tempdir().expect("a directory for the fake Gitea's repositories");
        let mut forge = Forge::new(format!("http://{addr}/"), git_root.path().to_owned());
        let admin_id = forge
            .add_user(admin, password, &format!("{admin}@fake.invalid"), true)
            .unwrap_or_else(|why| panic!("the fake Gitea's admin: {why}"));
        let admin_token = forge.add_token(admin_id, "fake-gitea-admin", &["all"]);
        let shared = Arc::new(Shared {
            admin: admin.to_owned(),
            admin_password: password.to_owned(),
            admin_token,
            state: Mutex::new(State {
                forge,
                violations: Vec::new(),
                calls: Vec::new(),
                faults: Vec::new(),
                deliveries: Vec::new(),
            }),
            _git_root: git_root,
        });
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            shared,
            addr,
            server,
        }
    }

    /// The fake's ROOT_URL, without the trailing slash:
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the API is: `http://127.0.0.1:PORT/api/v1`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v1", self.url())
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// The initial site admin's name.
    pub fn admin(&self) -> String {
        self.shared.admin.clone()
    }

    /// The initial site admin's password.
    pub fn admin_password(&self) -> String {
        self.shared.admin_password.clone()
    }

    /// A token (scope `all`) of the initial site admin.
    pub fn admin_token(&self) -> String {
        self.shared.admin_token.clone()
    }

    /// A repository's HTTP clone URL, as Gitea's `clone_url`.
    pub fn clone_url(&self, owner: &str, repo: &str) -> String {
        format!("{}/{owner}/{repo}.git", self.url())
    }

    /// A clone URL carrying Basic credentials (`secret` is a password or
    /// a token).
    pub fn clone_url_with(&self, owner: &str, repo: &str, user: &str, secret: &str) -> String {
        format!("http://{user}:{secret}@{}/{owner}/{repo}.git", self.addr)
    }

    // ----- the contract -----

    /// Every way a request broke Gitea's document so far (and any answer
    /// of the fake's own that did).
    pub fn violations(&self) -> Vec<String> {
        self.shared.state().violations.clone()
    }

    /// The violations so far, forgotten: for a test that broke the
    /// document on purpose.
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.state().violations)
    }

    /// Fails the test if any request broke Gitea's document.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "requests broke Gitea's Swagger document:\n{}",
            violations.join("\n")
        );
    }

    /// How many times `operation` was called, answered or not: an
    /// `operationId` (`adminCreateUser`), or for Git `info/refs`,
    /// `git-upload-pack` or `git-receive-pack`.
    pub fn calls(&self, operation: &str) -> usize {
        self.shared
            .state()
            .calls
            .iter()
            .filter(|c| *c == operation)
            .count()
    }

    // ----- faults -----

    /// The next `times` calls matching `target` answer `status` with
    /// Gitea's error shape, and change nothing. `target` is an
    /// `operationId` (`adminCreateUser`), a Git operation
    /// (`git-receive-pack`), a path prefix (`/api/v1/admin`), or a method
    /// and a path prefix (`POST /api/v1/orgs`).
    pub fn fail_next(&self, target: &str, status: u16, times: u32) {
        self.arm(target, status, times, false);
    }

    /// The next call matching `target` answers `status` and changes
    /// nothing.
    pub fn fail_once(&self, target: &str, status: u16) {
        self.fail_next(target, status, 1);
    }

    /// The next `times` calls matching `target` are done, and then
    /// answered `status` anyway: a forge that crashed after the change but
    /// before the answer. For crash and retry tests.
    pub fn fail_after_next(&self, target: &str, status: u16, times: u32) {
        self.arm(target, status, times, true);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    fn arm(&self, target: &str, status: u16, times: u32, after: bool) {
        if times > 0 {
            self.shared.state().faults.push(Fault {
                target: target.to_owned(),
                status,
                times,
                after,
            });
        }
    }

    // ----- set-up without the API -----

    /// Makes a user directly, as `gitea admin user create` would (no
    /// password change required); its id.
    pub fn add_user(&self, name: &str, password: &str, admin: bool) -> i64 {
        self.shared
            .state()
            .forge
            .add_user(name, password, &format!("{name}@fake.invalid"), admin)
            .unwrap_or_else(|why| panic!("adding {name} to the fake Gitea: {why}"))
    }

    /// Makes a token for `user` directly; its sha1.
    pub fn add_token(&self, user: &str, name: &str, scopes: &[&str]) -> String {
        let mut state = self.shared.state();
        let id = state
            .forge
            .user(user)
            .unwrap_or_else(|| panic!("the fake Gitea has no user {user}"))
            .id;
        state.forge.add_token(id, name, scopes)
    }

    /// Commits `files` on the default branch of `owner/repo` (making the
    /// repository, default branch `main`, if there is none) so clones
    /// have something; the commit's id.
    pub fn seed_repo(&self, owner: &str, repo: &str, files: &[(&str, &str)]) -> String {
        let mut state = self.shared.state();
        let forge = &mut state.forge;
        let id = match forge.repo(owner, repo) {
            Some(found) => found.id,
            None => {
                let owner_id = forge
                    .user(owner)
                    .unwrap_or_else(|| panic!("the fake Gitea has no user or organisation {owner}"))
                    .id;
                forge
                    .create_repo(owner_id, &json!({ "name": repo }))
                    .unwrap_or_else(|(_, why)| panic!("making {owner}/{repo}: {why}"))
            }
        };
        forge
            .commit_files(id, files, "Seed")
            .unwrap_or_else(|why| panic!("seeding {owner}/{repo}: {why}"))
    }

    /// Opens an issue directly, by the initial admin; its number.
    pub fn add_issue(&self, owner: &str, repo: &str, title: &str, body: &str) -> i64 {
        let mut state = self.shared.state();
        let forge = &mut state.forge;
        let repo_id = forge
            .repo(owner, repo)
            .unwrap_or_else(|| panic!("the fake Gitea has no repository {owner}/{repo}"))
            .id;
        let poster = forge.user(&self.shared.admin).map_or(0, |u| u.id);
        forge.add_issue(repo_id, poster, title, body, Vec::new())
    }

    /// Assigns `assignee` to issue `number` of `owner/repo` (as the initial
    /// admin, in the web interface) and sends Gitea's `issues` event
    /// (`X-Gitea-Event-Type: issue_assign`, `action: "assigned"`) to the
    /// system hooks subscribed to it. Panics where Gitea would refuse: the
    /// assignee must be a user with write access to the repository.
    pub async fn assign_issue(
        &self,
        owner: &str,
        repo: &str,
        number: i64,
        assignee: &str,
    ) -> Vec<Delivery> {
        let payload = {
            let mut state = self.shared.state();
            let forge = &mut state.forge;
            let (repo_row, user, issue) = forge_issue(forge, owner, repo, number, assignee);
            assert!(
                forge.can_be_assigned(user, &repo_row),
                "Gitea would not let {assignee} be assigned in {owner}/{repo}: no write access"
            );
            assert!(
                !forge.pulls.iter().any(|p| p.issue_id == issue),
                "{owner}/{repo}#{number} is a pull request; the fake assigns issues only"
            );
            let updated = forge.now();
            if let Some(row) = forge.issues.iter_mut().find(|i| i.id == issue) {
                if !row.assignees.contains(&user) {
                    row.assignees.push(user);
                }
                row.updated = updated;
            }
            let sender = forge.user(&self.shared.admin).map_or(0, |u| u.id);
            forge.issue_payload(issue, "assigned", sender)
        };
        self.deliver("issue_assign", payload).await
    }

    /// Comments `body` on issue `number` of `owner/repo` as `user` (in the
    /// web interface) and sends Gitea's `issue_comment` event (`action:
    /// "created"`) to the system hooks subscribed to it; what each
    /// receiver answered. Panics where Gitea would refuse: `user` must be
    /// able to read the repository.
    pub async fn comment_as(
        &self,
        owner: &str,
        repo: &str,
        number: i64,
        user: &str,
        body: &str,
    ) -> Vec<Delivery> {
        let payload = {
            let mut state = self.shared.state();
            let forge = &mut state.forge;
            let (repo_row, poster, issue) = forge_issue(forge, owner, repo, number, user);
            assert!(
                forge.access(Some(poster), &repo_row) >= 1,
                "Gitea would not let {user} comment in {owner}/{repo}: cannot read it"
            );
            let comment = forge.add_comment(issue, poster, body);
            forge.comment_payload(issue, comment, poster)
        };
        self.deliver("issue_comment", payload).await
    }

    /// Sends `payload` as event type `event_type` (`issue_assign`,
    /// `issues`, `issue_comment`, `push`, `pull_request`, …; the
    /// `X-Gitea-Event` header is derived as Gitea does) to every active
    /// system hook of type `gitea` or `gogs` subscribed to it, one after
    /// the other; what each receiver answered.
    pub async fn deliver(&self, event_type: &str, payload: Value) -> Vec<Delivery> {
        let targets: Vec<webhooks::Target> = self
            .shared
            .state()
            .forge
            .hooks
            .iter()
            .filter(|h| {
                h.active
                    && h.system
                    && matches!(h.kind.as_str(), "gitea" | "gogs")
                    && h.events.iter().any(|e| e == event_type)
            })
            .map(|h| webhooks::Target {
                hook_id: h.id,
                url: h.url.clone(),
                content_type: h.content_type.clone(),
                secret: h.secret.clone(),
                authorization_header: h.authorization_header.clone(),
            })
            .collect();
        let event = forge::event_header(event_type).to_owned();
        let mut sent = Vec::new();
        for target in &targets {
            sent.push(webhooks::deliver(target, event_type, &event, &payload).await);
        }
        self.shared.state().deliveries.extend(sent.iter().cloned());
        sent
    }

    // ----- inspection -----

    /// Every user and organisation.
    pub fn users(&self) -> Vec<FakeUser> {
        self.shared
            .state()
            .forge
            .users
            .iter()
            .map(|u| FakeUser {
                id: u.id,
                login: u.name.clone(),
                email: u.email.clone(),
                full_name: u.full_name.clone(),
                password: u.password.clone(),
                is_admin: u.is_admin,
                is_org: u.is_org,
                must_change_password: u.must_change_password,
                active: u.active,
                prohibit_login: u.prohibit_login,
            })
            .collect()
    }

    /// The user (or organisation) `name`, if there is one.
    pub fn user(&self, name: &str) -> Option<FakeUser> {
        self.users()
            .into_iter()
            .find(|u| u.login.eq_ignore_ascii_case(name))
    }

    /// Every token `user` ever had, deleted ones not `valid`.
    pub fn tokens(&self, user: &str) -> Vec<FakeToken> {
        let state = self.shared.state();
        let forge = &state.forge;
        forge
            .tokens
            .iter()
            .filter_map(|t| {
                let owner = forge.user_by_id(t.user_id)?;
                owner.name.eq_ignore_ascii_case(user).then(|| FakeToken {
                    id: t.id,
                    user: owner.name.clone(),
                    name: t.name.clone(),
                    sha1: t.sha1.clone(),
                    scopes: t.scopes.clone(),
                    valid: !t.deleted,
                })
            })
            .collect()
    }

    /// Whether `sha1` is a live token.
    pub fn token_is_valid(&self, sha1: &str) -> bool {
        self.shared.state().forge.token(sha1).is_some()
    }

    /// Every organisation with its teams.
    pub fn orgs(&self) -> Vec<FakeOrg> {
        let state = self.shared.state();
        let forge = &state.forge;
        forge
            .users
            .iter()
            .filter(|u| u.is_org)
            .map(|o| FakeOrg {
                id: o.id,
                name: o.name.clone(),
                full_name: o.full_name.clone(),
                visibility: o.visibility.clone(),
                teams: forge
                    .teams
                    .iter()
                    .filter(|t| t.org_id == o.id)
                    .map(|t| FakeTeam {
                        id: t.id,
                        org: o.name.clone(),
                        name: t.name.clone(),
                        permission: t.permission.clone(),
                        members: t
                            .members
                            .iter()
                            .filter_map(|m| forge.user_by_id(*m).map(|u| u.name.clone()))
                            .collect(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The organisation `name`, if there is one.
    pub fn org(&self, name: &str) -> Option<FakeOrg> {
        self.orgs()
            .into_iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// The members of team `team` of organisation `org` (empty if either
    /// is missing).
    pub fn team_members(&self, org: &str, team: &str) -> Vec<String> {
        self.org(org)
            .and_then(|o| o.teams.into_iter().find(|t| t.name == team))
            .map(|t| t.members)
            .unwrap_or_default()
    }

    /// Every webhook, system and default.
    pub fn hooks(&self) -> Vec<FakeHook> {
        self.shared
            .state()
            .forge
            .hooks
            .iter()
            .map(|h| FakeHook {
                id: h.id,
                system: h.system,
                kind: h.kind.clone(),
                url: h.url.clone(),
                content_type: h.content_type.clone(),
                secret: h.secret.clone(),
                events: h.events.clone(),
                active: h.active,
                branch_filter: h.branch_filter.clone(),
                authorization_header: h.authorization_header.clone(),
            })
            .collect()
    }

    /// Every repository.
    pub fn repos(&self) -> Vec<FakeRepo> {
        let state = self.shared.state();
        let forge = &state.forge;
        forge
            .repos
            .iter()
            .map(|r| FakeRepo {
                id: r.id,
                owner: forge
                    .user_by_id(r.owner_id)
                    .map(|u| u.name.clone())
                    .unwrap_or_default(),
                name: r.name.clone(),
                private: r.private,
                default_branch: r.default_branch.clone(),
                path: forge.repo_path(r),
            })
            .collect()
    }

    /// The repository `owner/name`, if there is one.
    pub fn repo(&self, owner: &str, name: &str) -> Option<FakeRepo> {
        self.repos()
            .into_iter()
            .find(|r| r.owner.eq_ignore_ascii_case(owner) && r.name.eq_ignore_ascii_case(name))
    }

    /// Issue (or pull request) `number` of `owner/repo`.
    pub fn issue(&self, owner: &str, repo: &str, number: i64) -> Option<FakeIssue> {
        let state = self.shared.state();
        let forge = &state.forge;
        let repo = forge.repo(owner, repo)?;
        let issue = forge
            .issues
            .iter()
            .find(|i| i.repo_id == repo.id && i.index == number)?;
        let name = |id: i64| {
            forge
                .user_by_id(id)
                .map(|u| u.name.clone())
                .unwrap_or_default()
        };
        Some(FakeIssue {
            id: issue.id,
            number: issue.index,
            title: issue.title.clone(),
            body: issue.body.clone(),
            poster: name(issue.poster_id),
            assignees: issue.assignees.iter().map(|a| name(*a)).collect(),
            closed: issue.closed,
            is_pull: forge.pulls.iter().any(|p| p.issue_id == issue.id),
        })
    }

    /// The comments on issue (or pull request) `number` of `owner/repo`.
    pub fn comments(&self, owner: &str, repo: &str, number: i64) -> Vec<FakeComment> {
        let Some(issue) = self.issue(owner, repo, number) else {
            return Vec::new();
        };
        let state = self.shared.state();
        let forge = &state.forge;
        forge
            .comments
            .iter()
            .filter(|c| c.issue_id == issue.id)
            .map(|c| FakeComment {
                id: c.id,
                issue: number,
                user: forge
                    .user_by_id(c.poster_id)
                    .map(|u| u.name.clone())
                    .unwrap_or_default(),
                body: c.body.clone(),
            })
            .collect()
    }

    /// The comments `user` made on issue `number` of `owner/repo`, oldest
    /// first.
    pub fn comments_by(
        &self,
        owner: &str,
        repo: &str,
        number: i64,
        user: &str,
    ) -> Vec<FakeComment> {
        self.comments(owner, repo, number)
            .into_iter()
            .filter(|c| c.user == user)
            .collect()
    }

    /// The pull requests of `owner/repo`, oldest first.
    pub fn pulls(&self, owner: &str, repo: &str) -> Vec<FakePull> {
        let state = self.shared.state();
        let forge = &state.forge;
        let Some(repo) = forge.repo(owner, repo) else {
            return Vec::new();
        };
        forge
            .pulls
            .iter()
            .filter_map(|p| {
                let issue = forge
                    .issues
                    .iter()
                    .find(|i| i.id == p.issue_id && i.repo_id == repo.id)?;
                Some(FakePull {
                    id: p.id,
                    number: issue.index,
                    title: issue.title.clone(),
                    body: issue.body.clone(),
                    poster: forge
                        .user_by_id(issue.poster_id)
                        .map(|u| u.name.clone())
                        .unwrap_or_default(),
                    head: p.head.clone(),
                    base: p.base.clone(),
                    head_sha: p.head_sha.clone(),
                    closed: issue.closed,
                })
            })
            .collect()
    }

    /// The refs of `owner/repo` (`refs/heads/main` → commit id).
    pub fn refs(&self, owner: &str, repo: &str) -> BTreeMap<String, String> {
        let Some(path) = self.repo(owner, repo).map(|r| r.path) else {
            return BTreeMap::new();
        };
        forge::run_git(
            &path,
            &["for-each-ref", "--format=%(refname) %(objectname)"],
        )
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, id)| (name.to_owned(), id.to_owned()))
        .collect()
    }

    /// Every webhook sent so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.state().deliveries.clone()
    }
}

impl Drop for GiteaFake {
    fn drop(&mut self) {
        self.server.abort();
        let violations = self.violations();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "requests broke Gitea's Swagger document:\n{}",
                violations.join("\n")
            );
        }
    }
}

/// Every request: the API's below `/api/v1`, Git's by their paths.
async fn handle(
    Extract(shared): Extract<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(path) = uri
        .path()
        .strip_prefix("/api/v1")
        .filter(|p| p.is_empty() || p.starts_with('/'))
    {
        let (status, body) = api(&shared, path, &method, &uri, &headers, &body);
        return match body {
            Some(body) => (
                status,
                [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
                body.to_string(),
            )
                .into_response(),
            None => status.into_response(),
        };
    }
    if let Some(request) = smart_http::parse(&method, uri.path(), uri.query()) {
        return git(&shared, request, &method, &uri, &headers, &body).await;
    }
    (StatusCode::NOT_FOUND, "404 page not found").into_response()
}

/// One API call: checked against the document, authenticated, served,
/// and its answer checked.
fn api(
    shared: &Shared,
    path: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let mut state = shared.state();
    let operation = match document::lookup(method, path) {
        Lookup::Found(operation) => operation,
        Lookup::NoPath => {
            state.calls.push(format!("{method} {path}"));
            state
                .violations
                .push(format!("{method} {path}: no such path in Gitea's document"));
            return state.forge.not_found();
        }
        Lookup::NoMethod(template) => {
            state.calls.push(format!("{method} {path}"));
            state.violations.push(format!(
                "{method} {path}: Gitea's document has no {method} for {template}"
            ));
            return (StatusCode::METHOD_NOT_ALLOWED, None);
        }
    };
    let label = format!("{} ({})", operation.name, operation.id);
    state.calls.push(operation.id.to_owned());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok());
    let checked = operation.check_request(uri.query().unwrap_or_default(), content_type, body);
    state
        .violations
        .extend(checked.problems.iter().map(|p| format!("{label}: {p}")));
    let fault = state.take_fault(operation.id, method, uri.path());
    if let Some((status, false)) = fault {
        return injected(&state.forge, status);
    }
    let answer = serve(&mut state.forge, &operation, method, headers, &checked);
    if let Some((status, true)) = fault {
        return injected(&state.forge, status);
    }
    let problems = operation.check_response(answer.0, answer.1.as_ref());
    state.violations.extend(
        problems
            .into_iter()
            .map(|p| format!("{label}: the fake's own {} answer: {p}", answer.0)),
    );
    answer
}

fn injected(forge: &Forge, status: u16) -> Answer {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    forge.error(status, "injected by the test")
}

/// The router's gates (authentication, account, scope, sign-in, admin),
/// the binding's refusal, then the operation.
fn serve(
    forge: &mut Forge,
    operation: &document::Operation,
    method: &Method,
    headers: &HeaderMap,
    checked: &document::Checked,
) -> Answer {
    let Some((gate, category)) = forge::gate(operation.id) else {
        return forge.call(
            operation.id,
            None,
            &operation.path,
            &checked.query,
            &checked.body,
        );
    };
    let doer = match authenticate(forge, headers, &checked.query) {
        Ok(doer) => doer,
        Err(answer) => return answer,
    };
    if let Some(doer) = &doer
        && let Some(refusal) = account_refusal(forge, doer.id)
    {
        return refusal;
    }
    let write = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if let (
        Some(Doer {
            scopes: Some(scopes),
            ..
        }),
        Some(category),
    ) = (&doer, category)
        && !forge::scopes_allow(scopes, category, write)
    {
        let level = if write { "write" } else { "read" };
        return forge.error(
            StatusCode::FORBIDDEN,
            format!(
                "token does not have at least one of required scope(s), required=[{level}:{category}], token scope={}",
                scopes.join(",")
            ),
        );
    }
    let signed_in = doer.as_ref().map(|d| d.id);
    let admin = signed_in.is_some_and(|id| forge.is_admin(id));
    match gate {
        Gate::Public => {}
        Gate::Signed | Gate::Admin if signed_in.is_none() => {
            return forge.error(StatusCode::UNAUTHORIZED, "token is required");
        }
        Gate::Admin if !admin => {
            return forge.error(StatusCode::FORBIDDEN, "user should be the site admin");
        }
        Gate::Signed | Gate::Admin => {}
        Gate::Basic => {
            let username = operation.path.get("username").cloned().unwrap_or_default();
            let Some(owner) = forge.user(&username).map(|u| u.id) else {
                return forge.not_found();
            };
            if !admin && signed_in != Some(owner) {
                return forge.error(
                    StatusCode::FORBIDDEN,
                    "doer should be the site admin or be same as the contextUser",
                );
            }
            if !doer.as_ref().is_some_and(|d| d.basic) {
                return forge.error(StatusCode::UNAUTHORIZED, "auth required");
            }
        }
    }
    if let Some((status, message)) = &checked.refusal {
        return forge.error(*status, message.clone());
    }
    forge.call(
        operation.id,
        doer.as_ref(),
        &operation.path,
        &checked.query,
        &checked.body,
    )
}

/// Credentials as sent.
enum Credentials {
    None,
    Token(String),
    Basic(String, String),
}

fn credentials(headers: &HeaderMap, query: &BTreeMap<String, Vec<String>>) -> Credentials {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim().to_owned();
        if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
            return Credentials::Token(rest);
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = webhooks::base64_decode(&rest)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            return Credentials::Basic(user.to_owned(), password.to_owned());
        }
    }
    for name in ["token", "access_token"] {
        if let Some(token) = query.get(name).and_then(|v| v.first()) {
            return Credentials::Token(token.clone());
        }
    }
    Credentials::None
}

/// Who the request is from: nobody, a user, or a 401.
fn authenticate(
    forge: &Forge,
    headers: &HeaderMap,
    query: &BTreeMap<String, Vec<String>>,
) -> Result<Option<Doer>, Answer> {
    let refused = || {
        Err(forge.error(
            StatusCode::UNAUTHORIZED,
            "invalid username, password or token",
        ))
    };
    let by_token = |sha1: &str, basic: bool| {
        forge.token(sha1).map(|t| Doer {
            id: t.user_id,
            scopes: Some(t.scopes.clone()),
            basic,
        })
    };
    match credentials(headers, query) {
        Credentials::None => Ok(None),
        Credentials::Token(sha1) => by_token(&sha1, false).map_or_else(refused, |d| Ok(Some(d))),
        Credentials::Basic(user, password) => {
            if let Some(doer) = by_token(&password, true) {
                return Ok(Some(doer));
            }
            if matches!(password.as_str(), "" | "x-oauth-basic")
                && let Some(doer) = by_token(&user, true)
            {
                return Ok(Some(doer));
            }
            match forge.users.iter().find(|u| {
                !u.is_org
                    && (u.name.eq_ignore_ascii_case(&user) || u.email.eq_ignore_ascii_case(&user))
            }) {
                Some(u) if !password.is_empty() && u.password == password => Ok(Some(Doer {
                    id: u.id,
                    scopes: None,
                    basic: true,
                })),
                _ => refused(),
            }
        }
    }
}

/// Gitea's refusal of an account that may not use the API.
fn account_refusal(forge: &Forge, id: i64) -> Option<Answer> {
    let user = forge.user_by_id(id)?;
    let refuse =
        |message: String| Some((StatusCode::FORBIDDEN, Some(json!({ "message": message }))));
    if !user.active || user.prohibit_login {
        return refuse(
            "This account is prohibited from signing in, please contact your site administrator."
                .into(),
        );
    }
    if user.must_change_password {
        return refuse(format!(
            "You must change your password. Change it at: {}user/change_password",
            forge.root
        ));
    }
    None
}

/// One Git request: Basic authentication, the repository's permissions,
/// then `git http-backend`.
async fn git(
    shared: &Shared,
    request: GitRequest,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let challenge = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"Gitea\"")],
            "Unauthorized\n",
        )
            .into_response()
    };
    let (fault, path_info, user, root) = {
        let mut state = shared.state();
        state.calls.push(request.operation().to_owned());
        let fault = state.take_fault(request.operation(), method, uri.path());
        if let Some((status, false)) = fault {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "injected by the test\n").into_response();
        }
        let forge = &state.forge;
        let doer = match credentials(headers, &BTreeMap::new()) {
            Credentials::Basic(..) => match authenticate(forge, headers, &BTreeMap::new()) {
                Ok(Some(doer)) => doer,
                _ => return challenge(),
            },
            _ => return challenge(),
        };
        if account_refusal(forge, doer.id).is_some() {
            return (StatusCode::FORBIDDEN, "This account may not sign in\n").into_response();
        }
        let Some(repo) = forge.repo(&request.owner, &request.repo) else {
            return (StatusCode::NOT_FOUND, "Repository not found\n").into_response();
        };
        let access = forge.access(Some(doer.id), repo);
        if access == 0 {
            return (StatusCode::NOT_FOUND, "Repository not found\n").into_response();
        }
        if request.writes() && access < 2 {
            return (StatusCode::FORBIDDEN, "User permission denied\n").into_response();
        }
        if let Some(scopes) = &doer.scopes
            && !forge::scopes_allow(scopes, "repository", request.writes())
        {
            return (
                StatusCode::FORBIDDEN,
                "token does not have the required repository scope\n",
            )
                .into_response();
        }
        let path = forge.repo_path(repo);
        let relative = path
            .strip_prefix(&forge.git_root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let user = forge
            .user_by_id(doer.id)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        (
            fault,
            format!("/{relative}/{}", request.rest),
            user,
            forge.git_root.clone(),
        )
    };
    let response = smart_http::serve(
        &root,
        &path_info,
        method,
        uri.query().unwrap_or_default(),
        headers,
        body,
        &user,
    )
    .await;
    match fault {
        Some((status, true)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, "injected by the test\n").into_response()
        }
        _ => response,
    }
}

/// Repository `owner/repo`, the id of user `user` and the id of issue
/// `number` in it; panics naming what the fake does not have.
fn forge_issue(
    forge: &Forge,
    owner: &str,
    repo: &str,
    number: i64,
    user: &str,
) -> (forge::RepoRow, i64, i64) {
    let repo_row = forge
        .repo(owner, repo)
        .unwrap_or_else(|| panic!("the fake Gitea has no repository {owner}/{repo}"))
        .clone();
    let user = forge
        .user(user)
        .unwrap_or_else(|| panic!("the fake Gitea has no user {user}"))
        .id;
    let issue = forge
        .issues
        .iter()
        .find(|i| i.repo_id == repo_row.id && i.index == number)
        .unwrap_or_else(|| panic!("{owner}/{repo} has no issue #{number}"))
        .id;
    (repo_row, user, issue)
}
