//! Popups for questions inside Zellij: when the daemon runs in a Zellij
//! session (`ZELLIJ` is set) and `YARD_PROMPT_PANES=true`, each new
//! question opens a floating pane running `yard prompt --once`, which
//! shows the oldest unanswered question, takes the answer and closes.
//!
//! The pane is a convenience, never a dependency: an agent's wait does not
//! rely on it, and a pane that cannot be opened is logged and forgotten.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use yard_services::{EventBus, YardEvent};

/// Where the panes' `yard prompt` finds the daemon.
#[derive(Debug, Clone)]
pub(crate) struct PaneTarget {
    pub(crate) listen: SocketAddr,
    /// The data directory: the admin token is read from there, so it never
    /// appears on a command line.
    pub(crate) data_dir: PathBuf,
}

/// Whether panes were asked for and can be opened here.
pub(crate) fn wanted(prompt_panes: bool) -> bool {
    prompt_panes && std::env::var_os("ZELLIJ").is_some()
}

/// Opens a pane for every question asked until `stop`.
pub(crate) async fn open_for_questions(bus: EventBus, target: PaneTarget, stop: CancellationToken) {
    let yard = match std::env::current_exe() {
        Ok(path) => path,
        Err(e) => {
            tracing::warn!(error = %e, "cannot find the yard binary; no question panes");
            return;
        }
    };
    let mut events = bus.subscribe();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = stop.cancelled() => return,
        };
        match event {
            Ok(YardEvent::Question(question)) if question.outcome.is_pending() => {
                let url = format!("http://{}", target.listen);
                let opened = tokio::process::Command::new("zellij")
                    .args([
                        "action",
                        "new-pane",
                        "--floating",
                        "--close-on-exit",
                        "--name",
                    ])
                    .arg(format!("question from agent {}", question.agent_id))
                    .arg("--")
                    .arg(&yard)
                    .args(["prompt", "--once", "--url", &url, "--data-dir"])
                    .arg(&target.data_dir)
                    .status()
                    .await;
                match opened {
                    Ok(status) if status.success() => {
                        tracing::debug!(question = %question.id, "question pane opened");
                    }
                    Ok(status) => {
                        tracing::warn!(question = %question.id, %status, "zellij refused the question pane");
                    }
                    Err(e) => {
                        tracing::warn!(question = %question.id, error = %e, "cannot run zellij for the question pane");
                    }
                }
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
