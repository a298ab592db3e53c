//! Benchmark: a `tools/call` round trip, p50 and p99 over 1000 calls, on
//! each transport (streamable HTTP, and stdio through `yard mcp`), against
//! the same trivial tool served by the Python SDK's own server in the same
//! run. The client is the Python SDK in every case.
//!
//! Run with `cargo bench -p yard --bench mcp`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use yard_testkit::{Daemon, DaemonSetup, MCP_BASELINE_SERVER, mcp_python, run_mcp_plan};

const CALLS: u32 = 1000;

fn bench(python: &std::path::Path, transport: Value) -> (f64, f64) {
    let plan = json!({"transport": transport, "steps": [
        {"op": "bench", "tool": "check_name_availability", "args": {"name": "bench"}, "count": CALLS},
    ]});
    let results = run_mcp_plan(python, &plan);
    let result = &results[1];
    assert_eq!(result["op"], "bench", "{results:?}");
    (
        result["p50_ms"].as_f64().unwrap(),
        result["p99_ms"].as_f64().unwrap(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn main() {
    let python = mcp_python(env!("CARGO_TARGET_TMPDIR").as_ref());
    let daemon = Daemon::start(
        env!("CARGO_BIN_EXE_yard").as_ref(),
        DaemonSetup {
            env: vec![("RUST_LOG".into(), "warn".into())],
            ..DaemonSetup::default()
        },
    );
    let mut baseline = tempfile::Builder::new().suffix(".py").tempfile().unwrap();
    baseline.write_all(MCP_BASELINE_SERVER.as_bytes()).unwrap();
    let port = free_port();
    let mut http_baseline = Command::new(&python)
        .arg(baseline.path())
        .args(["http", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the Python SDK's server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let rows = [
        (
            "streamable HTTP",
            bench(
                &python,
                json!({"url": format!("{}/mcp", daemon.url()), "token": daemon.token()}),
            ),
            bench(
                &python,
                json!({"url": format!("http://127.0.0.1:{port}/mcp")}),
            ),
        ),
        (
            "stdio",
            bench(
                &python,
                json!({"command": [env!("CARGO_BIN_EXE_yard"), "mcp"],
                       "env": {"YARD_URL": daemon.url(), "YARD_DATA_DIR": daemon.data_dir()}}),
            ),
            bench(
                &python,
                json!({"command": [python, baseline.path(), "stdio"]}),
            ),
        ),
    ];
    let _ = http_baseline.kill();
    let _ = http_baseline.wait();
    println!("tools/call round trip, {CALLS} calls each, Python SDK client");
    for (transport, (p50, p99), (base_p50, base_p99)) in rows {
        println!(
            "  {transport:<16} yard p50 {p50:>6.2} ms p99 {p99:>6.2} ms | Python SDK server p50 {base_p50:>6.2} ms p99 {base_p99:>6.2} ms | ratio p50 {:.2} p99 {:.2}",
            p50 / base_p50,
            p99 / base_p99
        );
    }
}
