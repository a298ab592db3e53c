//! `yard aio` with the real browser stack: Debian's Xvfb, Chromium, x11vnc,
//! websockify and noVNC, supervised by the binary, with the forge turned
//! off by a config file. A DevTools client drives a page the test serves
//! through the relay (with the token; refused without), the noVNC page
//! answers behind the same token, a killed Chromium comes back with its
//! restart counted, and SIGTERM leaves no process of the tree behind.
//!
//! The browser stack listens on its fixed ports (9222, 9223, 5900, 6080,
//! 6081, display :99), so the test runs everything in one function.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "aio-test-relay-token-0123456789abcdef";

/// The `yard aio` process; on drop (a failed test included) every process
/// of its tree is killed, services in their own process groups too.
struct Aio {
    child: Child,
    /// The agent image the test had built, removed at the end.
    agent_image: String,
}

impl Drop for Aio {
    fn drop(&mut self) {
        // The supervisor first, so that it starts nothing new, then what
        // it had started.
        let tree = descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in tree {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.agent_image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Every live process below `root`, from /proc.
fn descendants(root: u32) -> BTreeSet<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, state)) = parent_and_state(pid)
            && state != 'Z'
        {
            parents.push((pid, ppid));
        }
    }
    let mut found = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid) in &parents {
            if *ppid == parent && found.insert(*pid) {
                frontier.push(*pid);
            }
        }
    }
    found
}

/// A process's parent and state letter, while it exists.
fn parent_and_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// When a process started, in clock ticks since boot.
fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(19).unwrap().parse().unwrap()
}

fn alive(pid: u32) -> bool {
    parent_and_state(pid).is_some_and(|(_, state)| state != 'Z')
}

async fn wait_for<T>(what: &str, within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A GET with a bearer token, its JSON answer; `None` while it cannot be had.
async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Option<Value> {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Serves one page with a title, for the browser to open.
async fn serve_page() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let body = "<html><head><title>aio page</title></head>\
                            <body style=\"background:#c33\">hello</body></html>";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

/// One DevTools session over a WebSocket.
struct Cdp {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Cdp {
    async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { socket, next_id: 1 }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(request.to_string()))
            .await
            .unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), self.socket.next())
                .await
                .expect("DevTools answers")
                .unwrap()
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == json!(id) {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("aio.toml");
    std::fs::write(
        &path,
        "# The forge is the next step; this test is about the browser.\n\
         [services.gitea]\nenabled = false\n",
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_browser_stack_comes_up_in_order_is_driven_through_the_relay_and_stops_clean() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let log_dir = temp.path().join("logs");
    let config = write_config(temp.path());
    // A build context the engine can build without a registry.
    let agent_context = temp.path().join("agent");
    std::fs::create_dir(&agent_context).unwrap();
    std::fs::write(agent_context.join("task"), "agents read this\n").unwrap();
    std::fs::write(
        agent_context.join("Dockerfile"),
        "FROM scratch\nLABEL yard-test=aio\nCOPY task /task\n",
    )
    .unwrap();
    let agent_image = format!("yard-test-aio-agent:{}", uuid::Uuid::new_v4().simple());
    // A display lock left by a killed run would stop Xvfb.
    let _ = std::fs::remove_file("/tmp/.X99-lock");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_yard"))
        .arg("aio")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("YARD_DATA_DIR", &data_dir)
        .env("YARD_LISTEN", "127.0.0.1:0")
        .env("YARD_AIO_LOG_DIR", &log_dir)
        .env("YARD_AIO_CONFIG", &config)
        .env("YARD_RELAY_TOKEN", TOKEN)
        .env("YARD_AIO_STOP_TIMEOUT", "10s")
        .env("YARD_LABELS", "yard-test=aio")
        .env("YARD_AGENT_IMAGE", &agent_image)
        .env("YARD_AGENT_CONTEXT", &agent_context)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut aio = Aio {
        child,
        agent_image: agent_image.clone(),
    };
    let http = yard_testkit::http();

    // The daemon says where it listens in its data directory.
    let yard = wait_for(
        "the daemon's address",
        Duration::from_secs(30),
        async || {
            std::fs::read_to_string(data_dir.join("listen-addr"))
                .ok()
                .map(|addr| format!("http://{}", addr.trim()))
        },
    )
    .await;
    let admin = std::fs::read_to_string(data_dir.join("admin-token")).unwrap();
    let admin = admin.trim();
    let health = wait_for("/health healthy", Duration::from_secs(60), async || {
        let answer = http.get(format!("{yard}/health")).send().await.ok()?;
        let body: Value = answer.json().await.ok()?;
        (body["status"] == "healthy").then_some(body)
    })
    .await;
    eprintln!("healthy after {:?}", started.elapsed());
    for service in [
        "xvfb",
        "chromium",
        "x11vnc",
        "websockify",
        "devtools-relay",
        "novnc",
    ] {
        assert_eq!(health["services"][service], "running", "{health}");
    }
    assert!(health["services"].get("gitea").is_none(), "{health}");

    // `/api/aio` needs a token; with one it lists the services in start
    // order, and their processes started in that order.
    let refused = http.get(format!("{yard}/api/aio")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let status = get_json(&http, &format!("{yard}/api/aio"), admin)
        .await
        .unwrap();
    let names: Vec<&str> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|service| service["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        // Each after what it needs; among those free to go, by name.
        [
            "yard",
            "xvfb",
            "chromium",
            "devtools-relay",
            "x11vnc",
            "websockify",
            "novnc"
        ]
    );
    let pid_of = |status: &Value, name: &str| -> u32 {
        let service = status["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|service| service["name"] == name)
            .unwrap();
        u32::try_from(service["pid"].as_u64().unwrap()).unwrap()
    };
    let xvfb = start_ticks(pid_of(&status, "xvfb"));
    let chromium = start_ticks(pid_of(&status, "chromium"));
    let x11vnc = start_ticks(pid_of(&status, "x11vnc"));
    assert!(xvfb <= chromium && chromium <= x11vnc, "start order");
    assert_eq!(status["browser"]["mode"], "internal");
    assert!(
        status["browser"]["cdpUrl"]
            .as_str()
            .unwrap()
            .ends_with(":9223")
    );

    // DevTools through the relay: refused without the token or with a
    // wrong one, and with it the /json answer points back at the relay.
    let relay = "http://127.0.0.1:9223";
    for token in [None, Some("wrong")] {
        let mut request = http.get(format!("{relay}/json/version"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    let version = get_json(&http, &format!("{relay}/json/version"), TOKEN)
        .await
        .unwrap();
    let browser_ws = version["webSocketDebuggerUrl"].as_str().unwrap();
    assert!(
        browser_ws.starts_with("ws://127.0.0.1:9223/devtools/browser/"),
        "{browser_ws}"
    );
    let mut browser = Cdp::connect(browser_ws).await;
    let got = browser.call("Browser.getVersion", json!({})).await;
    assert!(got["product"].as_str().unwrap().contains("Chrome"), "{got}");

    // A page the test serves: open it, read its title, take a screenshot.
    let page = serve_page().await;
    let target: Value = http
        .put(format!("{relay}/json/new?http://{page}/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut tab = Cdp::connect(target["webSocketDebuggerUrl"].as_str().unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let title = tab
            .call(
                "Runtime.evaluate",
                json!({"expression": "document.title || location.href"}),
            )
            .await;
        if title["result"]["value"] == "aio page" {
            break;
        }
        assert!(Instant::now() < deadline, "the page never loaded: {title}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shot = tab.call("Page.captureScreenshot", json!({})).await;
    let png = shot["data"].as_str().unwrap();
    assert!(png.starts_with("iVBORw0KGgo"), "a PNG, base64");

    // The noVNC page is behind the same token.
    let novnc = "http://127.0.0.1:6080/vnc.html";
    assert_eq!(http.get(novnc).send().await.unwrap().status(), 401);
    let page = http
        .get(format!("{novnc}?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("noVNC"));

    // Killing Chromium gets it restarted, and the status counts it.
    let chromium_pid = pid_of(&status, "chromium");
    Command::new("kill")
        .args(["-9", &chromium_pid.to_string()])
        .status()
        .unwrap();
    let restarted = wait_for("Chromium back", Duration::from_secs(30), async || {
        let status = get_json(&http, &format!("{yard}/api/aio"), admin).await?;
        let chromium = status["services"]
            .as_array()?
            .iter()
            .find(|service| service["name"] == "chromium")?
            .clone();
        (chromium["restarts"] == 1 && chromium["state"] == "running" && chromium["ready"] == true)
            .then_some(chromium)
    })
    .await;
    assert_ne!(restarted["pid"], json!(chromium_pid));
    assert_eq!(restarted["lastExit"], "signal 9");

    // The engine had no agent image: it was built from the context.
    wait_for(
        "the agent image built",
        Duration::from_secs(60),
        async || {
            let status = get_json(&http, &format!("{yard}/api/aio"), admin).await?;
            let state = status["agentImage"].as_str()?.to_owned();
            assert!(!state.starts_with("failed"), "{state}");
            (state == "built").then_some(())
        },
    )
    .await;
    let inspected = Command::new("docker")
        .args(["image", "inspect", &agent_image])
        .output()
        .unwrap();
    assert!(
        inspected.status.success(),
        "the agent image is on the engine"
    );

    // `yard aio status` prints the same.
    let printed = Command::new(env!("CARGO_BIN_EXE_yard"))
        .args(["aio", "status", "--url", &yard, "--token", admin])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.status.success(), "{text}");
    assert!(
        text.contains("chromium") && text.contains("signal 9"),
        "{text}"
    );
    assert!(text.contains("agent image: built"), "{text}");

    // SIGTERM: every service stops, then the yard; nothing is left.
    let tree = descendants(aio.child.id());
    assert!(tree.len() >= 6, "{tree:?}");
    let stopping = Instant::now();
    Command::new("kill")
        .args(["-TERM", &aio.child.id().to_string()])
        .status()
        .unwrap();
    let exit = wait_for("yard aio to exit", Duration::from_secs(30), async || {
        aio.child.try_wait().unwrap()
    })
    .await;
    assert!(exit.success(), "{exit:?}");
    eprintln!("stopped in {:?}", stopping.elapsed());
    let left: Vec<u32> = tree.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    for log in ["chromium", "xvfb", "x11vnc", "websockify"] {
        assert!(log_dir.join(format!("{log}.log")).exists(), "{log}.log");
    }
}

/// As PID 1 (a PID namespace of its own, no tini), `yard aio` splits into
/// a small init and the real process: an orphan a service leaves behind is
/// reaped rather than left a zombie, and SIGTERM reaches the real process,
/// which stops cleanly.
#[tokio::test]
async fn as_pid_1_it_reaps_orphans_and_passes_sigterm_on() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("aio.toml");
    // The shell exits at once; its background sleep, killed with the
    // shell's process group, is reparented to PID 1 and must be reaped.
    std::fs::write(
        &config,
        "[services.orphans]\ncommand = [\"sh\", \"-c\", \"sleep 30 & exit 0\"]\nrestart = \"never\"\n",
    )
    .unwrap();
    let child = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_yard"))
        .arg("aio")
        .env("YARD_DATA_DIR", temp.path().join("data"))
        .env("YARD_LISTEN", "127.0.0.1:0")
        .env("YARD_AIO_LOG_DIR", temp.path().join("logs"))
        .env("YARD_AIO_CONFIG", &config)
        .env("YARD_AGENT_CONTEXT", temp.path().join("no-agent-context"))
        .env("GITEA_URL", "http://127.0.0.1:9")
        .env("CHROME_CDP_URL", "http://127.0.0.1:9")
        .env("YARD_LABELS", "yard-test=aio")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut unshare = Aio {
        child,
        agent_image: String::new(),
    };
    let unshare_pid = unshare.child.id();
    // unshare's child is the init; the init's child is the real yard aio.
    let (init, real) = wait_for(
        "the init and its child",
        Duration::from_secs(20),
        async || {
            let init = *descendants(unshare_pid)
                .iter()
                .find(|pid| parent_and_state(**pid).is_some_and(|(ppid, _)| ppid == unshare_pid))?;
            let real = *descendants(init)
                .iter()
                .find(|pid| parent_and_state(**pid).is_some_and(|(ppid, _)| ppid == init))?;
            Some((init, real))
        },
    )
    .await;
    eprintln!("unshare {unshare_pid}, init {init}, yard aio {real}");
    let logs = temp.path().join("logs/orphans.log");
    wait_for(
        "the service to have run",
        Duration::from_secs(20),
        async || logs.exists().then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let zombies: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| parent_and_state(*pid) == Some((init, 'Z')))
        .collect();
    assert!(zombies.is_empty(), "zombies left on PID 1: {zombies:?}");
    assert!(alive(real), "the real yard aio runs under the init");

    Command::new("kill")
        .args(["-TERM", &init.to_string()])
        .status()
        .unwrap();
    let exit = wait_for("the init to exit", Duration::from_secs(30), async || {
        unshare.child.try_wait().unwrap()
    })
    .await;
    assert!(
        exit.success(),
        "the init leaves with the real process's status: {exit:?}"
    );
}
