//! `yard prompt` end to end, as a person uses it: the real daemon, a
//! question put in its store, and the real binary in a tmux pane, read
//! with capture-pane and typed at with send-keys.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::now;
use yard_core::{Agent, Question, QuestionKind, QuestionOutcome, Timestamp};
use yard_store::Store;
use yard_testkit::{Daemon, DaemonSetup};

mod support;

const YARD: &str = env!("CARGO_BIN_EXE_yard");
/// How long the screen or the store may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

/// A daemon, its store opened beside it, and one running agent in that
/// store (a question whose agent is not running is cancelled when seen).
async fn yard_with_agent() -> (Daemon, Store, Agent) {
    let daemon = Daemon::start(YARD.as_ref(), DaemonSetup::default());
    let store = Store::open(&Store::sqlite_url(daemon.data_dir()))
        .await
        .unwrap();
    let agent = support::running_agent(&store, "prompt-test", "ask things", None).await;
    (daemon, store, agent)
}

/// Puts a pending question of `kind` from `agent` in the store.
async fn ask(store: &Store, agent: &Agent, kind: QuestionKind, message: &str) -> String {
    let question = Question {
        id: uuid::Uuid::now_v7().to_string(),
        agent_id: agent.id.clone(),
        owner_id: None,
        kind,
        message: message.to_owned(),
        context: Some("Bash: rm -rf build".to_owned()),
        deadline: Timestamp(now().0 + 10 * 60 * 1000),
        created_at: now(),
        outcome: QuestionOutcome::Pending,
        origin: None,
        agent_task: Some(format!("{} (task)", agent.id)),
    };
    store.insert_question(&question).await.unwrap();
    question.id
}

/// Waits until question `id` is settled; returns the answer it got.
async fn answer_of(store: &Store, id: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let question = store.question(id).await.unwrap().unwrap();
        match question.outcome {
            QuestionOutcome::Pending => {}
            QuestionOutcome::Answered { answer, .. } => return answer,
            other => panic!("question {id} ended {other:?}, not answered"),
        }
        assert!(
            Instant::now() < deadline,
            "question {id} still pending after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One command in a detached tmux session on a server of its own (its
/// own socket, no configuration), 120x30. Dropping it kills the server
/// and so the command, even when the test failed.
struct Pane {
    server: String,
    /// Where the command's stderr and its exit code are written.
    dir: tempfile::TempDir,
}

impl Pane {
    /// Runs `yard ARGS` against `daemon` with its admin token.
    fn yard(daemon: &Daemon, args: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = format!("yard-prompt-{}", uuid::Uuid::new_v4().simple());
        let pane = Self { server, dir };
        let command = format!(
            "{YARD} {args} --url {} --token {} 2>{}; echo $? >{}",
            daemon.url(),
            daemon.token(),
            pane.stderr_path().display(),
            pane.exit_path().display(),
        );
        let started = pane
            .tmux()
            .args(["-f", "/dev/null", "new-session", "-d", "-s", &pane.server])
            .args(["-x", "120", "-y", "30", &command])
            .status()
            .expect("tmux (apt-get install -y tmux)");
        assert!(started.success(), "tmux new-session failed");
        pane
    }

    fn tmux(&self) -> Command {
        let mut tmux = Command::new("tmux");
        tmux.args(["-L", &self.server]);
        tmux
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr")
    }

    fn exit_path(&self) -> PathBuf {
        self.dir.path().join("exit-code")
    }

    /// What the pane shows now.
    fn screen(&self) -> String {
        let output = self
            .tmux()
            .args(["capture-pane", "-p", "-t", &self.server])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn send(&self, key: &str) {
        let sent = self
            .tmux()
            .args(["send-keys", "-t", &self.server, key])
            .status()
            .unwrap();
        assert!(sent.success(), "tmux send-keys {key} failed");
    }

    /// Waits until the pane shows `text`; returns the screen.
    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the pane never showed {text:?}; it shows:\n{screen}\nstderr:\n{}",
                read(&self.stderr_path())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the command exits; returns its exit code.
    async fn exit_code(&self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(code) = read(&self.exit_path()).trim().parse() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "yard did not exit; the pane shows:\n{}\nstderr:\n{}",
                self.screen(),
                read(&self.stderr_path())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self
            .tmux()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn once_shows_the_pending_question_takes_y_and_exits() {
    let (daemon, store, agent) = yard_with_agent().await;
    let id = ask(
        &store,
        &agent,
        QuestionKind::Confirm,
        "May I delete the build directory?",
    )
    .await;
    let pane = Pane::yard(&daemon, "prompt --once");
    let screen = pane.wait_for("May I delete the build directory?").await;
    assert!(screen.contains(agent.id.as_str()), "{screen}");
    assert!(screen.contains("Bash: rm -rf build"), "{screen}");
    assert!(
        screen.contains(&format!("Task: {} (task)", agent.id)),
        "{screen}"
    );
    pane.send("y");
    assert_eq!(answer_of(&store, &id).await, "yes");
    assert_eq!(pane.exit_code().await, 0, "{}", read(&pane.stderr_path()));
}

#[tokio::test]
async fn prompt_answers_a_select_with_down_and_enter() {
    let (daemon, store, agent) = yard_with_agent().await;
    let options = ["Red", "Blue", "Green"].map(str::to_owned).to_vec();
    let id = ask(
        &store,
        &agent,
        QuestionKind::Select { options },
        "Which colour should the button be?",
    )
    .await;
    let pane = Pane::yard(&daemon, "prompt");
    let screen = pane.wait_for("Which colour should the button be?").await;
    assert!(screen.contains("1 pending"), "{screen}");
    pane.send("Down");
    pane.wait_for("> Blue").await;
    pane.send("Enter");
    assert_eq!(answer_of(&store, &id).await, "Blue");
    pane.wait_for("No pending questions").await;
    pane.send("q");
    assert_eq!(pane.exit_code().await, 0, "{}", read(&pane.stderr_path()));
}

#[tokio::test]
async fn once_waits_and_says_why_it_stops_when_the_yard_goes_away() {
    let (mut daemon, _store, _agent) = yard_with_agent().await;
    let pane = Pane::yard(&daemon, "prompt --once");
    pane.wait_for("Waiting for a question").await;
    daemon.kill();
    assert_eq!(pane.exit_code().await, 1);
    let said = read(&pane.stderr_path());
    assert!(said.contains("question channel"), "{said}");
}
