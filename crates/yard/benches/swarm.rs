//! Benchmark: 20 stacks deployed concurrently on the `swarm` backend,
//! against the same 20 on the `docker` backend and against the floor, a
//! shell loop of `docker service create --detach` (one replica, host-mode
//! port) that then waits until every task runs, all in the same run on
//! this machine's engine made a single-node swarm.
//!
//! The yard counts a stack as deployed when it answers HTTP through its
//! endpoint; the shell loop stops at "the task runs", so the floor is a
//! little lower than what the yard promises. Run with
//! `cargo bench -p yard --bench swarm`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::process::Command;
use std::time::{Duration, Instant};

use yard_testkit::{
    Daemon, DaemonSetup, DockerSweep, TEST_LABEL, WEB_IMAGE, ensure_stack_images, ensure_swarm,
};

const STACKS: usize = 20;
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() {
    ensure_stack_images().await;
    ensure_swarm().await;
    let (mut swarm, mut docker, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let on_swarm = through_the_api("swarm").await;
        let on_docker = through_the_api("docker").await;
        let loop_floor = shell_loop();
        println!(
            "round {round}: swarm {:>6.0} ms, docker {:>6.0} ms, docker service create loop {:>6.0} ms",
            ms(on_swarm),
            ms(on_docker),
            ms(loop_floor)
        );
        swarm.push(on_swarm);
        docker.push(on_docker);
        floor.push(loop_floor);
    }
    for side in [&mut swarm, &mut docker, &mut floor] {
        side.sort();
    }
    let (swarm, docker, floor) = (swarm[ROUNDS / 2], docker[ROUNDS / 2], floor[ROUNDS / 2]);
    let per = |d: Duration| ms(d) / STACKS as f64;
    println!();
    println!("{STACKS} stacks deployed concurrently, median of {ROUNDS} rounds");
    println!(
        "  yard, swarm backend:          {:>7.1} ms per stack",
        per(swarm)
    );
    println!(
        "  yard, docker backend:         {:>7.1} ms per stack",
        per(docker)
    );
    println!(
        "  docker service create loop:   {:>7.1} ms per stack",
        per(floor)
    );
    println!(
        "  ratio swarm / service loop:   {:>7.2}   (goal: at most 1.2)",
        swarm.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  ratio swarm / docker backend: {:>7.2}",
        swarm.as_secs_f64() / docker.as_secs_f64()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Deploys `STACKS` stacks at once through a fresh daemon on `backend` and
/// waits for every one to complete.
async fn through_the_api(backend: &str) -> Duration {
    let daemon = Daemon::start(
        env!("CARGO_BIN_EXE_yard").as_ref(),
        DaemonSetup {
            stack_image: Some(WEB_IMAGE.to_owned()),
            env: vec![
                ("RUST_LOG".into(), "warn".into()),
                ("YARD_BACKEND".into(), backend.into()),
            ],
            ..DaemonSetup::default()
        },
    );
    let started = Instant::now();
    let deployments = (0..STACKS).map(|i| {
        let daemon = &daemon;
        async move {
            let id = daemon.api_deploy(&format!("bench{i}")).await;
            daemon.wait_complete(&id).await;
        }
    });
    futures::future::join_all(deployments).await;
    started.elapsed()
}

/// The floor: `docker service create --detach` for each stack, all at
/// once, then a loop until every service has its one task running. (Not
/// the CLI's own wait, which watches each service for a further five
/// seconds to call it stable.)
fn shell_loop() -> Duration {
    let sweep = DockerSweep::new();
    // Labelled as the sweep labels, so it removes them even if this panics.
    let id = sweep.id();
    let short = &id[..12];
    let script = format!(
        "for i in $(seq 1 {STACKS}); do \
           docker service create --detach --quiet --name yardbench-{short}-$i \
             --label {TEST_LABEL}={id} --replicas 1 \
             --publish mode=host,target=8080 {WEB_IMAGE} >/dev/null 2>&1 & \
         done; wait; \
         until [ \"$(docker service ls --filter label={TEST_LABEL}={id} --format '{{{{.Replicas}}}}' \
                 | grep -c '^1/1')\" = {STACKS} ]; do sleep 0.05; done",
    );
    let started = Instant::now();
    let status = Command::new("sh").arg("-c").arg(&script).status().unwrap();
    let elapsed = started.elapsed();
    assert!(status.success());
    drop(sweep);
    elapsed
}
