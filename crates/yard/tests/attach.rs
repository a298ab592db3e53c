//! `yard attach` to an interactive agent, as a person uses it: the real
//! binary in a tmux pane, attached to an agent running on a terminal. The
//! agent prints its terminal's size whenever it changes, so resizing the
//! tmux window shows whether the new size reached the agent.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use yard_testkit::{Daemon, DaemonSetup, ensure_agent_image};

const YARD: &str = env!("CARGO_BIN_EXE_yard");

/// Prints the terminal's size at start and on every SIGWINCH.
const SIZE_REPORTER: &str = "trap 'echo \"size $(stty size)\"' WINCH; echo \"size $(stty size)\"; while :; do sleep 0.2; done";

/// A tmux server of the test's own, killed when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        Self {
            socket: format!("yard-attach-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the pane shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.run(&["capture-pane", "-p", "-t", "attach"]);
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the pane never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[tokio::test]
async fn attach_to_an_interactive_agent_under_tmux_passes_its_window_size_and_each_resize() {
    let image = ensure_agent_image().await;
    let daemon = Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            env: vec![
                ("YARD_AGENT_IMAGE".into(), image),
                ("YARD_LEND_BINARY".into(), "true".into()),
                ("YARD_AGENT_MODE".into(), "interactive".into()),
            ],
            ..DaemonSetup::default()
        },
    );
    let repo = yard_testkit::git_repo(&[("README.md", "size\n")]);
    let out = daemon.cli(&[
        "spawn",
        "--repo",
        &repo.path().display().to_string(),
        "--task",
        SIZE_REPORTER,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spawned: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = spawned["agents"][0]["id"].as_str().unwrap().to_owned();

    let tmux = Tmux::new();
    let attach = format!(
        "{YARD} attach {id} --url {} --data-dir {}",
        daemon.url(),
        daemon.data_dir().display()
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "attach",
        "-x",
        "100",
        "-y",
        "30",
        &attach,
    ]);
    tmux.wait_for("size 30 100");
    tmux.run(&["resize-window", "-t", "attach", "-x", "120", "-y", "40"]);
    tmux.wait_for("size 40 120");
    // Detach with ctrl-e e: the agent keeps running.
    tmux.run(&["send-keys", "-t", "attach", "C-e", "e"]);
    let agent = daemon.api_get(&format!("/api/agents/{id}")).await;
    assert_eq!(agent["status"], "running", "{agent}");
}
