//! Agents end to end: the real daemon, real agent containers running a
//! scripted agent that asks `yard hook` before every action, real git.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use yard_testkit::{AGENT_UID, Daemon, DaemonSetup, ensure_agent_image, git};

const YARD: &str = env!("CARGO_BIN_EXE_yard");

const POLICY: &str = r#"
[[rules]]
name = "keep-the-tree"
tool = "Bash"
command = "rm -rf *"
decision = "deny"
reason = "Deleting trees is not allowed."
"#;

/// A daemon whose agents run the scripted agent image, borrow this build's
/// `yard` for their hooks and share a cargo cache of their own (the yard
/// labels it for the test, so it is swept with the rest).
async fn daemon(files: Vec<(String, String)>) -> Daemon {
    let image = ensure_agent_image().await;
    let cache = format!(
        "agentyard-test-cargo-{}:/cache/cargo:CARGO_HOME",
        uuid::Uuid::new_v4().simple()
    );
    let env = [
        ("YARD_AGENT_IMAGE", image.as_str()),
        ("YARD_LEND_BINARY", "true"),
        ("YARD_AGENT_CACHES", cache.as_str()),
    ];
    Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            files,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..DaemonSetup::default()
        },
    )
}

/// A repository whose first commit has `files`.
fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    yard_testkit::git_repo(files)
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `yard spawn` through the CLI; returns the agent ids.
fn spawn(daemon: &Daemon, repo: &Path, count: u32, task: &str) -> Vec<String> {
    let repo = repo.display().to_string();
    let count = count.to_string();
    let out = ok(&daemon.cli(&[
        "spawn", "--repo", &repo, "-n", &count, "--task", task, "--json",
    ]));
    let result: Value = serde_json::from_str(&out).unwrap();
    result["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["status"], "running", "{a}");
            a["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn agent(daemon: &Daemon, id: &str) -> Value {
    let out = ok(&daemon.cli(&["agents", "--json"]));
    let list: Value = serde_json::from_str(&out).unwrap();
    list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap()
}

/// Waits until every agent has exited, and returns them.
fn wait_exited(daemon: &Daemon, ids: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let agents: Vec<Value> = ids.iter().map(|id| agent(daemon, id)).collect();
        if agents.iter().all(|a| a["status"] == "exited") {
            return agents;
        }
        assert!(
            Instant::now() < deadline,
            "agents did not finish: {agents:?}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Agent containers of this daemon's test that still exist (not the
/// short-lived one that reads an image's users).
async fn containers(daemon: &Daemon) -> Vec<String> {
    daemon
        .sweep()
        .resources()
        .await
        .into_iter()
        .filter(|r| r.starts_with("container") && r.contains("-agent-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_agents_work_in_isolation_and_their_branches_come_back() {
    let daemon = daemon(vec![("policy.toml".into(), POLICY.into())]).await;
    let source = repo(&[("README.md", "hello\n")]);
    let task = r#"
bash_tool "echo work of $YARD_AGENT_ID > agent-$YARD_AGENT_ID.txt"
bash_tool "rm -rf /workspace/README.md"
write_tool notes-$YARD_AGENT_ID.md "notes of $YARD_AGENT_ID"
find / -name 'agent-*.txt' -not -path '/proc/*' 2>/dev/null | sort > seen.txt
git add -A && git commit -qm "work of $YARD_AGENT_ID"
"#;
    let started = Instant::now();
    let ids = spawn(&daemon, source.path(), 3, task);
    assert_eq!(ids.len(), 3);
    let agents = wait_exited(&daemon, &ids);
    eprintln!("3 agents finished in {:?}", started.elapsed());

    for (id, agent) in ids.iter().zip(&agents) {
        assert_eq!(agent["exitCode"], 0, "{agent}\n{}", daemon.log());
        let branch = format!("yard/{id}");
        assert_eq!(agent["branch"], branch.as_str());
        // The branch is in the source repository, with one commit.
        assert_eq!(
            git(
                source.path(),
                &["rev-list", "--count", &format!("main..{branch}")]
            ),
            "1"
        );
        let files = git(source.path(), &["ls-tree", "--name-only", &branch]);
        let mut files: Vec<&str> = files.lines().collect();
        files.sort_unstable();
        let expected_notes = format!("notes-{id}.md");
        let expected_work = format!("agent-{id}.txt");
        assert_eq!(
            files,
            ["README.md", &expected_work, &expected_notes, "seen.txt"],
            "the denied rm did not happen"
        );
        // No agent saw another's files.
        let seen = git(source.path(), &["show", &format!("{branch}:seen.txt")]);
        assert_eq!(seen, format!("/workspace/agent-{id}.txt"));
        assert_eq!(agent["headCommit"].as_str().map(str::len), Some(40));

        let audit: Value =
            serde_json::from_str(&ok(&daemon.cli(&["audit", id, "--json"]))).unwrap();
        let decisions: Vec<(String, String)> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "PreToolUse")
            .map(|e| {
                (
                    e["tool"].as_str().unwrap().to_owned(),
                    e["decision"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            decisions,
            [
                ("Bash".into(), "allow".into()),
                ("Bash".into(), "deny".into()),
                ("Write".into(), "allow".into())
            ]
        );
        let audit_text = ok(&daemon.cli(&["audit", id]));
        assert!(audit_text.contains("keep-the-tree"), "{audit_text}");
    }

    let listed = ok(&daemon.cli(&["agents"]));
    assert!(
        ids.iter().all(|id| listed.contains(id.as_str())) && listed.contains("exited"),
        "{listed}"
    );
    let logs = ok(&daemon.cli(&["logs", &ids[0]]));
    assert!(
        logs.contains("denied: rm -rf /workspace/README.md"),
        "{logs}"
    );

    let diff = ok(&daemon.cli(&["diff", &ids[0]]));
    assert!(diff.contains(&format!("work of {}", ids[0])), "{diff}");
    assert!(diff.contains(&format!("+work of {}", ids[0])), "{diff}");

    // One merges in; the next would conflict on seen.txt and changes nothing.
    let merged = ok(&daemon.cli(&["merge", &ids[0]]));
    assert!(merged.contains("merged into main"), "{merged}");
    assert!(source.path().join(format!("agent-{}.txt", ids[0])).exists());
    let head = git(source.path(), &["rev-parse", "HEAD"]);
    let conflict = daemon.cli(&["merge", &ids[1]]);
    assert_eq!(conflict.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("conflict") && stderr.contains("seen.txt"),
        "{stderr}"
    );
    assert_eq!(
        git(source.path(), &["rev-parse", "HEAD"]),
        head,
        "nothing half-merged"
    );
    assert_eq!(git(source.path(), &["status", "--porcelain"]), "");

    // Checkouts and branches stay until pruned.
    let checkouts = daemon.data_dir().join("checkouts");
    assert_eq!(std::fs::read_dir(&checkouts).unwrap().count(), 3);
    let pruned: Value =
        serde_json::from_str(&ok(&daemon.cli(&["agents", "prune", "--json"]))).unwrap();
    assert_eq!(pruned["pruned"].as_array().unwrap().len(), 3);
    assert_eq!(std::fs::read_dir(&checkouts).unwrap().count(), 0);
    assert_eq!(git(source.path(), &["branch", "--list", "yard/*"]), "");
    assert!(containers(&daemon).await.is_empty());
}

/// A person's agent, running as the image's own user, works on a repository
/// that belongs to yet another user: its checkout is private to the agent's
/// user, and its work comes back and merges as the repository's owner.
#[tokio::test(flavor = "multi_thread")]
async fn a_persons_agent_works_on_another_owners_repository_and_the_work_comes_back() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let roots = tempfile::tempdir().unwrap();
    std::fs::set_permissions(roots.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let source = roots.path().join("app");
    yard_testkit::git_repo_at(&source, &[("README.md", "hello\n")]);
    let owner = 1001;
    let chowned = Command::new("chown")
        .args(["-R", &format!("{owner}:{owner}")])
        .arg(&source)
        .status()
        .unwrap();
    assert!(chowned.success());
    let image = ensure_agent_image().await;
    let cache = format!(
        "agentyard-test-cargo-{}:/cache/cargo:CARGO_HOME",
        uuid::Uuid::new_v4().simple()
    );
    let daemon = Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            env: [
                ("YARD_AGENT_IMAGE", image.as_str()),
                ("YARD_LEND_BINARY", "true"),
                ("YARD_AGENT_CACHES", cache.as_str()),
                ("YARD_REPO_ROOTS", &roots.path().display().to_string()),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
            ..DaemonSetup::default()
        },
    );
    let alice = ok(&daemon.cli(&["token", "create", "--name", "alice"]));
    let alice = alice.trim();
    let task = "printf 'by the agent\\n' > done.txt && git add -A && git commit -qm 'agent work'";
    let source_arg = source.display().to_string();
    let out = ok(&daemon.cli(&[
        "spawn",
        "--repo",
        &source_arg,
        "--task",
        task,
        "--json",
        "--token",
        alice,
    ]));
    let result: Value = serde_json::from_str(&out).unwrap();
    let id = result["agents"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(result["agents"][0]["owner"], "alice", "{result}");

    // The checkout is the agent's user's, and private.
    let checkout = daemon.data_dir().join("checkouts").join(&id);
    let meta = std::fs::metadata(&checkout).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (AGENT_UID, 0o700));
    let readme = std::fs::metadata(checkout.join("README.md")).unwrap();
    assert_eq!((readme.uid(), readme.mode() & 0o777), (AGENT_UID, 0o600));

    let agents = wait_exited(&daemon, std::slice::from_ref(&id));
    assert_eq!(agents[0]["exitCode"], 0, "{}\n{}", agents[0], daemon.log());
    let diff = ok(&daemon.cli(&["diff", &id, "--token", alice]));
    assert!(diff.contains("+by the agent"), "{diff}");
    let merged = ok(&daemon.cli(&["merge", &id, "--token", alice]));
    assert!(merged.contains("merged into main"), "{merged}");
    assert_eq!(
        std::fs::read_to_string(source.join("done.txt")).unwrap(),
        "by the agent\n"
    );
    let foreign = Command::new("find")
        .arg(&source)
        .args(["-not", "-uid", &owner.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&foreign.stdout),
        "",
        "everything in the repository is still its owner's"
    );
}

/// A crate with one dependency, served by a local registry inside the
/// repository, so building it fills `CARGO_HOME`'s registry cache.
fn crate_repo() -> tempfile::TempDir {
    let dep_manifest = "[package]\nname = \"dep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";
    let dep_lib = "pub fn answer() -> u32 { 42 }\n";
    let mut packed = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, contents) in [
        ("dep-0.1.0/Cargo.toml", dep_manifest),
        ("dep-0.1.0/src/lib.rs", dep_lib),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(contents.len() as u64);
        packed
            .append_data(&mut header, path, contents.as_bytes())
            .unwrap();
    }
    let crate_file = packed.into_inner().unwrap().finish().unwrap();
    let checksum = sha256_hex(&crate_file);
    let index = format!(
        "{{\"name\":\"dep\",\"vers\":\"0.1.0\",\"deps\":[],\"cksum\":\"{checksum}\",\"features\":{{}},\"yanked\":false}}\n"
    );
    let dir = repo(&[
        (
            "Cargo.toml",
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ndep = \"0.1\"\n",
        ),
        (
            "src/main.rs",
            "fn main() { println!(\"{}\", dep::answer()); }\n",
        ),
        (
            ".cargo/config.toml",
            "[source.crates-io]\nreplace-with = \"local\"\n\n[source.local]\nlocal-registry = \"/workspace/registry\"\n",
        ),
        ("registry/index/3/d/dep", &index),
        (".gitignore", "/target\n"),
    ]);
    std::fs::write(dir.path().join("registry/dep-0.1.0.crate"), &crate_file).unwrap();
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-qm", "registry"]);
    dir
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_build_reuses_the_shared_cargo_cache() {
    let daemon = daemon(Vec::new()).await;
    let source = crate_repo();
    let task = r#"bash_tool "cargo build 2>&1""#;
    let first = spawn(&daemon, source.path(), 1, task);
    wait_exited(&daemon, &first);
    let first_log = ok(&daemon.cli(&["logs", &first[0]]));
    assert!(
        first_log.contains("Unpacking dep v0.1.0"),
        "the first build fills the cache: {first_log}"
    );
    assert!(first_log.contains("Finished"), "{first_log}");

    let second = spawn(&daemon, source.path(), 1, task);
    wait_exited(&daemon, &second);
    let second_log = ok(&daemon.cli(&["logs", &second[0]]));
    assert!(second_log.contains("Finished"), "{second_log}");
    assert!(
        !second_log.contains("Unpacking"),
        "the second build is served from the cache volume: {second_log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_removes_every_agent_within_ten_seconds() {
    let mut daemon = daemon(Vec::new()).await;
    let source = repo(&[("README.md", "hello\n")]);
    let ids = spawn(&daemon, source.path(), 3, "sleep 600");
    assert_eq!(containers(&daemon).await.len(), 3);

    let signalled = Instant::now();
    let status = daemon.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", daemon.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(
        containers(&daemon).await.is_empty(),
        "no agent outlives the yard"
    );

    daemon.restart();
    for id in &ids {
        let agent = agent(&daemon, id);
        assert_eq!(agent["status"], "stopped", "{agent}");
        assert_eq!(agent["message"], "the yard stopped");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_left_by_a_killed_yard_are_removed_at_its_next_start() {
    let mut daemon = daemon(Vec::new()).await;
    let source = repo(&[("README.md", "hello\n")]);
    let ids = spawn(
        &daemon,
        source.path(),
        3,
        "echo started > started.txt; git add -A; git commit -qm started; sleep 600",
    );
    daemon.kill();
    assert_eq!(
        containers(&daemon).await.len(),
        3,
        "SIGKILL leaves them running"
    );
    daemon.restart();
    assert!(
        containers(&daemon).await.is_empty(),
        "removed at start:\n{}",
        daemon.log()
    );
    for id in &ids {
        let agent = agent(&daemon, id);
        assert_eq!(agent["status"], "stopped", "{agent}");
        // Their work is kept for review.
        let branch = format!("yard/{id}");
        let count = git(
            source.path(),
            &["rev-list", "--count", &format!("main..{branch}")],
        );
        assert!(count == "1" || count == "0", "{count}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hook_fails_closed_when_the_yard_is_gone() {
    let daemon = daemon(Vec::new()).await;
    let event =
        r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"}}"#;
    let socket = daemon.data_dir().join("nowhere.sock");
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = Command::new(YARD);
        cmd.arg("hook")
            .env("YARD_SOCKET", &socket)
            .env("YARD_AGENT_TOKEN", "yard_agent_x")
            .env("YARD_HOOK_TIMEOUT", "1s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), event.as_bytes()).unwrap();
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    };
    let started = Instant::now();
    let closed = run(&[]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(closed.status.code(), Some(0));
    let answer: Value = serde_json::from_slice(&closed.stdout).unwrap();
    assert_eq!(answer["hookSpecificOutput"]["permissionDecision"], "deny");
    assert!(String::from_utf8_lossy(&closed.stderr).contains("failing closed"));

    let open = run(&[("YARD_HOOK_FAIL", "open")]);
    assert_eq!(open.status.code(), Some(0));
    assert!(open.stdout.is_empty());

    let mut malformed = Command::new(YARD)
        .arg("hook")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(malformed.stdin.as_mut().unwrap(), b"{not json").unwrap();
    drop(malformed.stdin.take());
    let malformed = malformed.wait_with_output().unwrap();
    assert_eq!(malformed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("not JSON"));
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_types_to_the_agent_and_ctrl_e_e_detaches() {
    use std::io::{Read, Write};
    let daemon = daemon(Vec::new()).await;
    let source = repo(&[("README.md", "hello\n")]);
    let ids = spawn(&daemon, source.path(), 1, "cat");
    let mut attach = Command::new(YARD)
        .args(["attach", &ids[0]])
        .env("YARD_URL", daemon.url())
        .env("YARD_DATA_DIR", daemon.data_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = attach.stdin.take().unwrap();
    let mut stdout = attach.stdout.take().unwrap();
    // Read what the agent echoes on another thread, until it shows up.
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buffer = [0_u8; 1024];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..n]);
            if String::from_utf8_lossy(&seen).contains("hello agent") {
                let _ = seen_tx.send(());
            }
        }
    });
    // The attach may take a moment: type until the echo comes back.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        stdin.write_all(b"hello agent\n").unwrap();
        stdin.flush().unwrap();
        if seen_rx.recv_timeout(Duration::from_millis(500)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no echo from the agent");
    }
    stdin.write_all(&[0x05, b'e']).unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = attach.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ctrl-e, e did not detach");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    attach
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("detached; the agent keeps running"),
        "{stderr}"
    );
    assert_eq!(agent(&daemon, &ids[0])["status"], "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_what_is_wrong_and_how_to_fix_it() {
    let mut daemon = daemon(Vec::new()).await;
    let healthy = daemon.cli(&["doctor"]);
    let report = String::from_utf8_lossy(&healthy.stdout).into_owned();
    assert_eq!(healthy.status.code(), Some(0), "{report}");
    for line in [
        "ok    stacks: the docker backend answers",
        "ok    agents: on the local engine, docker",
        "ok    store: sqlite",
        "ok    control socket:",
        "ok    policy: built-in",
        "ok    git version",
    ] {
        assert!(report.contains(line), "{line:?} in\n{report}");
    }
    assert!(
        report.contains("warn  stack image: agentyard/stack:latest is not on the engine"),
        "{report}"
    );

    std::fs::write(
        daemon.data_dir().join("policy.toml"),
        "default = \"perhaps\"\n",
    )
    .unwrap();
    daemon.kill();
    let broken = daemon.cli(&["doctor"]);
    let report = String::from_utf8_lossy(&broken.stdout).into_owned();
    assert_eq!(broken.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  policy:") && report.contains("perhaps"),
        "{report}"
    );
    assert!(
        report.contains("FAIL  control socket:") && report.contains("does not answer"),
        "{report}"
    );
    assert!(report.contains("fix: "), "{report}");
}
