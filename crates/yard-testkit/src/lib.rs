//! Test support for agentyard, in one place.
//!
//! Tests here run against real parts: a real PostgreSQL server started for
//! the test process, real Docker resources, the real `yard` binary. The
//! helpers make that safe: every Docker resource a test makes carries a
//! per-test label and is removed when the guard drops, even if the test
//! panicked, and every server dies with the test process.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod agent_image;
mod browser;
mod daemon;
mod docker;
mod dokploy;
mod fake_engine;
mod git;
mod gitea;
mod images;
mod load;
mod mcp;
mod poll;
mod postgres;
mod swarm;

pub use agent_image::{AGENT_UID, AGENT_USER, ensure_agent_image, ensure_http_echo_image};
pub use browser::{Browser, Screen};
pub use daemon::{Daemon, DaemonSetup};
pub use docker::{DockerSweep, TEST_LABEL};
pub use dokploy::{
    DokployFake, FakeApplication, FakeDomain, FakeProject, SchemaValidator, dokploy_openapi,
};
pub use fake_engine::{FakeEngine, Step};
pub use git::{git, git_repo, git_repo_at};
pub use gitea::{
    Delivery, FakeComment, FakeHook, FakeIssue, FakeOrg, FakePull, FakeRepo, FakeTeam, FakeToken,
    FakeUser, GiteaFake, gitea_swagger,
};
pub use images::{
    CRASH_IMAGE, ECHO_IMAGE, FLAKY_IMAGE, HUNGRY_IMAGE, SLOW_IMAGE, WEB_IMAGE, ensure_stack_images,
};
pub use load::{Load, load};
pub use mcp::{MCP_BASELINE_SERVER, mcp_python, run_mcp_plan};
pub use poll::within;
pub use postgres::fresh_postgres_url;
pub use swarm::ensure_swarm;

/// An HTTP client for tests: no proxy, short timeouts, ring for TLS, and
/// redirects left for the test to see.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}
