//! The supervisor driven with tiny `/bin/sh` services: restarts and giving
//! up, stopping stubborn services and their children, start and stop
//! order, log rotation, and the configuration errors a person would make.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use yard_aio::{AioConfig, ConfigError, LastExit, ServiceState, ServiceStatus, Supervisor};

/// A TOML string literal holding `text`.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A `[services.NAME]` table running `script` under `/bin/sh -c`.
fn service(name: &str, script: &str, extra: &str) -> String {
    format!(
        "[services.{name}]\ncommand = [\"/bin/sh\", \"-c\", {}]\n{extra}\n",
        quoted(script)
    )
}

fn status_of(supervisor: &Supervisor, name: &str) -> ServiceStatus {
    supervisor
        .status()
        .into_iter()
        .find(|status| status.name == name)
        .unwrap()
}

/// Polls until `condition` holds for the service, or fails after `within`.
async fn wait_until(
    supervisor: &Supervisor,
    name: &str,
    within: Duration,
    condition: impl Fn(&ServiceStatus) -> bool,
) -> ServiceStatus {
    let deadline = Instant::now() + within;
    loop {
        let status = status_of(supervisor, name);
        if condition(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached within {within:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `pid` is gone: no such process, or only a zombie left for init.
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_service_that_exits_at_once_backs_off_longer_each_time_then_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let script = format!("date +%s%N >> {}; exit 3", starts.display());
    let config = AioConfig::from_toml(&service(
        "crashy",
        &script,
        "backoff_initial = \"50ms\"\nbackoff_max = \"1s\"\ngive_up_after = 4",
    ))
    .unwrap();
    let mut supervisor = Supervisor::start(config, &dir.path().join("logs")).unwrap();

    let status = wait_until(&supervisor, "crashy", Duration::from_secs(5), |status| {
        status.state == ServiceState::GaveUp
    })
    .await;
    assert_eq!(status.restarts, 3, "4 runs: the first and 3 restarts");
    assert_eq!(status.last_exit, Some(LastExit::Code(3)));
    assert_eq!(status.pid, None);

    let starts: Vec<u128> = std::fs::read_to_string(&starts)
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 4);
    let gaps: Vec<u128> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    // 50ms, 100ms, 200ms, plus the time to start a shell.
    assert!(
        gaps[0] >= 50 && gaps[1] >= 100 && gaps[2] >= 200,
        "gaps {gaps:?}"
    );
    assert!(gaps[1] > gaps[0] && gaps[2] > gaps[1], "gaps {gaps:?}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        status_of(&supervisor, "crashy").restarts,
        3,
        "not restarted after giving up"
    );
    supervisor.shutdown(Duration::from_secs(1)).await;
    assert_eq!(status_of(&supervisor, "crashy").state, ServiceState::GaveUp);
}

#[tokio::test]
async fn a_crash_loop_counts_its_restarts_in_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let config = AioConfig::from_toml(&service(
        "loop",
        "sleep 0.05; kill -9 $$",
        "backoff_initial = \"10ms\"\nbackoff_max = \"20ms\"\ngive_up_after = 100",
    ))
    .unwrap();
    let mut supervisor = Supervisor::start(config, &dir.path().join("logs")).unwrap();

    let status = wait_until(&supervisor, "loop", Duration::from_secs(5), |status| {
        status.restarts >= 3
    })
    .await;
    assert_ne!(status.state, ServiceState::GaveUp);
    assert_eq!(status.last_exit, Some(LastExit::Signal(9)));

    supervisor.shutdown(Duration::from_secs(1)).await;
    let status = status_of(&supervisor, "loop");
    assert_eq!(status.state, ServiceState::Stopped);
    assert!(status.restarts >= 3);
}

#[tokio::test]
async fn a_service_that_ignores_sigterm_is_killed_after_its_stop_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = AioConfig::from_toml(&service(
        "stubborn",
        "trap '' TERM; while :; do sleep 0.1; done",
        "stop_timeout = \"300ms\"",
    ))
    .unwrap();
    let mut supervisor = Supervisor::start(config, &dir.path().join("logs")).unwrap();
    let running = wait_until(&supervisor, "stubborn", Duration::from_secs(5), |status| {
        status.state == ServiceState::Running && status.uptime.is_some()
    })
    .await;
    let pid = running.pid.unwrap();
    // Let the shell set its trap.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let began = Instant::now();
    supervisor.shutdown(Duration::from_secs(5)).await;
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "killed before its timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    let status = status_of(&supervisor, "stubborn");
    assert_eq!(status.state, ServiceState::Stopped);
    assert_eq!(status.last_exit, Some(LastExit::Signal(9)));
    assert!(process_gone(pid));
}

#[tokio::test]
async fn shutdown_stays_within_its_bound_when_stop_timeouts_are_longer() {
    let dir = tempfile::tempdir().unwrap();
    let config = AioConfig::from_toml(&service(
        "stubborn",
        "trap '' TERM; while :; do sleep 0.1; done",
        "stop_timeout = \"30s\"",
    ))
    .unwrap();
    let mut supervisor = Supervisor::start(config, &dir.path().join("logs")).unwrap();
    wait_until(&supervisor, "stubborn", Duration::from_secs(5), |status| {
        status.state == ServiceState::Running
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let began = Instant::now();
    supervisor.shutdown(Duration::from_millis(400)).await;
    let took = began.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    assert_eq!(
        status_of(&supervisor, "stubborn").state,
        ServiceState::Stopped
    );
}

#[tokio::test]
async fn shutdown_leaves_no_grandchild_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!("sleep 1000 & echo $! > {}; wait", pid_file.display());
    let config = AioConfig::from_toml(&service("parent", &script, "")).unwrap();
    let mut supervisor = Supervisor::start(config, &dir.path().join("logs")).unwrap();

    let grandchild: u32 = wait_for_file(&pid_file).await.trim().parse().unwrap();
    assert!(
        !process_gone(grandchild),
        "the grandchild should be running"
    );

    supervisor.shutdown(Duration::from_secs(5)).await;
    assert!(
        process_gone(grandchild),
        "grandchild {grandchild} outlived shutdown"
    );
}

#[tokio::test]
async fn a_service_starts_only_once_its_dependency_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("a-ready");
    let order = dir.path().join("order");
    let a = format!(
        "echo a-started >> {order}; sleep 0.3; touch {marker}; echo a-ready >> {order}; exec sleep 1000",
        order = order.display(),
        marker = marker.display()
    );
    let b = format!("echo b-started >> {}; exec sleep 1000", order.display());
    let config = AioConfig::from_toml(&format!(
        "{}{}",
        service("b", &b, "after = [\"a\"]"),
        service(
            "a",
            &a,
            &format!(
                "ready = {{ file = {} }}",
                quoted(&marker.display().to_string())
            )
        ),
    ))
    .unwrap();
    assert_eq!(config.start_order(), ["a", "b"]);
    let mut supervisor = Supervisor::start(config, &dir.path().join("logs")).unwrap();

    wait_until(&supervisor, "b", Duration::from_secs(5), |status| {
        status.state == ServiceState::Running
    })
    .await;
    assert!(status_of(&supervisor, "a").ready);
    let names: Vec<String> = supervisor.status().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["a", "b"]);
    let log = wait_for_file(&order).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = log;
    while log.lines().count() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = std::fs::read_to_string(&order).unwrap();
    }
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["a-started", "a-ready", "b-started"]
    );
    supervisor.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn services_stop_in_reverse_start_order() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = dir.path().join("stopped");
    let script = |name: &str| {
        format!(
            "trap 'echo {name} >> {file}; exit 0' TERM; while :; do sleep 0.05; done",
            file = stopped.display()
        )
    };
    let config = AioConfig::from_toml(&format!(
        "{}{}{}",
        service("a", &script("a"), ""),
        service("b", &script("b"), "after = [\"a\"]"),
        service("c", &script("c"), "after = [\"b\"]"),
    ))
    .unwrap();
    let mut supervisor = Supervisor::start(config, &dir.path().join("logs")).unwrap();
    wait_until(&supervisor, "c", Duration::from_secs(5), |status| {
        status.state == ServiceState::Running
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    supervisor.shutdown(Duration::from_secs(5)).await;
    let order = std::fs::read_to_string(&stopped).unwrap();
    assert_eq!(order.lines().collect::<Vec<_>>(), ["c", "b", "a"]);
    for status in supervisor.status() {
        assert_eq!(status.state, ServiceState::Stopped, "{status:?}");
        assert_eq!(status.last_exit, Some(LastExit::Code(0)));
    }
}

#[tokio::test]
async fn a_chatty_service_log_rotates_at_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    // 2000 lines of 100 bytes (99 and a newline) to stdout and stderr.
    let script = "i=0; while [ $i -lt 1000 ]; do printf '%099d\\n' $i; printf '%099d\\n' $i >&2; i=$((i+1)); done";
    let config = AioConfig::from_toml(&format!(
        "[logs]\nmax_bytes = 10000\nkeep = 2\n{}",
        service("chatty", script, "restart = \"never\"")
    ))
    .unwrap();
    let mut supervisor = Supervisor::start(config, &logs).unwrap();
    let status = wait_until(&supervisor, "chatty", Duration::from_secs(10), |status| {
        status.state == ServiceState::Stopped
    })
    .await;
    assert_eq!(status.last_exit, Some(LastExit::Code(0)));
    supervisor.shutdown(Duration::from_secs(1)).await;

    let size = |name: &str| std::fs::metadata(logs.join(name)).map(|m| m.len());
    for name in ["chatty.log", "chatty.log.1", "chatty.log.2"] {
        let size = size(name).unwrap();
        assert!(size > 0 && size <= 10_000, "{name} is {size} bytes");
    }
    assert_eq!(
        size("chatty.log.1").unwrap(),
        10_000,
        "rotated files are full"
    );
    assert!(size("chatty.log.3").is_err(), "only two old logs are kept");
    let newest = std::fs::read_to_string(logs.join("chatty.log")).unwrap();
    assert!(newest.lines().all(|line| line.len() == 99));
    assert!(newest.ends_with(&format!("{:099}\n", 999)));
}

#[test]
fn an_unknown_key_is_named() {
    let error = AioConfig::from_toml("[services.a]\ncommand = [\"true\"]\nrestrat = \"never\"\n")
        .unwrap_err();
    assert!(matches!(error, ConfigError::Parse(_)));
    assert!(error.to_string().contains("restrat"), "{error}");
}

#[test]
fn a_service_needs_a_command() {
    let missing = AioConfig::from_toml("[services.web]\nafter = []\n").unwrap_err();
    assert!(matches!(&missing, ConfigError::MissingCommand { service } if service == "web"));
    assert!(
        missing.to_string().contains("`web` has no command"),
        "{missing}"
    );
    let empty = AioConfig::from_toml("[services.web]\ncommand = []\n").unwrap_err();
    assert!(matches!(&empty, ConfigError::MissingCommand { service } if service == "web"));
}

#[test]
fn after_must_name_a_configured_service() {
    let error = AioConfig::from_toml("[services.b]\ncommand = [\"true\"]\nafter = [\"xvfb\"]\n")
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "service `b` is after `xvfb`, which is not a configured service"
    );
}

#[test]
fn a_dependency_cycle_is_named() {
    let error = AioConfig::from_toml(
        "[services.a]\ncommand = [\"true\"]\nafter = [\"b\"]\n\
         [services.b]\ncommand = [\"true\"]\nafter = [\"c\"]\n\
         [services.c]\ncommand = [\"true\"]\nafter = [\"a\"]\n\
         [services.d]\ncommand = [\"true\"]\n",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "services depend on each other in a cycle: a -> b -> c -> a"
    );
}

#[test]
fn start_order_is_topological_with_ties_broken_by_name() {
    let config = AioConfig::from_toml(
        "[services.chromium]\ncommand = [\"chromium\"]\nafter = [\"xvfb\"]\n\
         [services.x11vnc]\ncommand = [\"x11vnc\"]\nafter = [\"xvfb\"]\n\
         [services.websockify]\ncommand = [\"websockify\"]\nafter = [\"x11vnc\"]\n\
         [services.xvfb]\ncommand = [\"Xvfb\"]\nready = { x11_display = \":99\" }\n\
         [services.forge]\ncommand = [\"gitea\", \"web\"]\nready = { tcp = \"127.0.0.1:3000\" }\nbackoff_initial = \"200ms\"\n",
    )
    .unwrap();
    assert_eq!(
        config.start_order(),
        ["forge", "xvfb", "chromium", "x11vnc", "websockify"]
    );
    let forge = &config.services()["forge"];
    assert_eq!(forge.backoff_initial, Duration::from_millis(200));
    assert_eq!(forge.backoff_max, Duration::from_secs(30));
    assert_eq!(forge.give_up_after, 5);
    assert_eq!(forge.fast_failure, Duration::from_secs(10));
    assert_eq!(forge.stop_timeout, Duration::from_secs(10));
}

#[test]
fn bad_durations_and_displays_are_refused() {
    let duration =
        AioConfig::from_toml("[services.a]\ncommand = [\"true\"]\nstop_timeout = \"soon\"\n")
            .unwrap_err();
    assert!(
        duration.to_string().contains("invalid duration `soon`"),
        "{duration}"
    );
    let display = AioConfig::from_toml(
        "[services.a]\ncommand = [\"true\"]\nready = { x11_display = \"99\" }\n",
    )
    .unwrap_err();
    assert!(
        matches!(display, ConfigError::InvalidReady { .. }),
        "{display}"
    );
}
