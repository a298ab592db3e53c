//! A real MCP client for tests: the official Python SDK (PyPI `mcp`), run
//! from a virtualenv made once per target directory, driven by a plan.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The SDK version the tests are written against.
const SDK: &str = "mcp==2.3.0";
const DRIVER: &str = include_str!("../python/mcp_driver.py");
/// A trivial server on the Python SDK's own server, for benchmarks.
pub const MCP_BASELINE_SERVER: &str = include_str!("../python/mcp_baseline.py");

/// A Python with the MCP SDK, in a virtualenv under `dir`; made (with pip,
/// from PyPI) the first time. Test processes take turns through a lock.
pub fn mcp_python(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("the virtualenv's directory");
    let lock = std::fs::File::create(dir.join("mcp-venv.lock")).expect("the venv lock");
    lock.lock().expect("locking the venv lock");
    let venv = dir.join("mcp-venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import mcp, httpx2"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(
            made.success(),
            "cannot make a virtualenv (apt-get install python3-venv)"
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", SDK])
            .status()
            .expect("pip");
        assert!(installed.success(), "cannot install {SDK} from PyPI");
    }
    drop(lock);
    python
}

/// Runs `plan` (see `python/mcp_driver.py`) and returns one JSON value per
/// step, after a first `connected` (or a `connect` failure).
pub fn run_mcp_plan(python: &Path, plan: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut driver = tempfile::Builder::new()
        .suffix(".py")
        .tempfile()
        .expect("a driver file");
    driver
        .write_all(DRIVER.as_bytes())
        .expect("writing the driver");
    let mut child = Command::new(python)
        .arg(driver.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the MCP driver");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(plan.to_string().as_bytes())
        .expect("writing the plan");
    let out = child.wait_with_output().expect("the MCP driver");
    assert!(
        out.status.success(),
        "the MCP driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the MCP driver printed no results ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
