//! What several of the binary's tests share: an agent recorded straight in
//! a daemon's store, so a test has an agent that asks questions without
//! running a container.
//!
//! Each test binary compiles this module and uses a part of it.

#![allow(clippy::unwrap_used, dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use yard_core::{Agent, AgentId, AgentStatus, Timestamp};
use yard_store::Store;

/// Now, as the store keeps time.
pub(crate) fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp(i64::try_from(millis).unwrap())
}

/// A fresh agent credential.
pub(crate) fn agent_token() -> String {
    format!("yard_agent_{}", uuid::Uuid::new_v4().simple())
}

/// A running agent on `task`, recorded in `store` as of instance
/// `instance` (not the daemon's own, so its start leaves the agent alone).
/// With a `token`, the agent is the admin's and the token is its working
/// credential (a credential works while its owner has an active token);
/// without one it has no owner and cannot call the yard itself.
pub(crate) async fn running_agent(
    store: &Store,
    instance: &str,
    task: &str,
    token: Option<&str>,
) -> Agent {
    let owner = match token {
        Some(_) => Some(store.active_tokens().await.unwrap()[0].owner()),
        None => None,
    };
    let agent = Agent {
        id: AgentId::generate(),
        instance: instance.into(),
        owner,
        parent: None,
        repo: "/repo".into(),
        base_ref: "main".into(),
        base_commit: "0".repeat(40),
        task: task.into(),
        image: "img".into(),
        status: AgentStatus::Running,
        exit_code: None,
        message: None,
        checkout: "/checkout".into(),
        head_commit: None,
        created_at: now(),
        updated_at: now(),
    };
    let hash = match token {
        Some(token) => yard_services::auth::hash_token(token),
        None => format!("no-credential-{}", agent.id),
    };
    store.insert_agent(&agent, &hash).await.unwrap();
    agent
}
