//! What the relay's tests (and its benchmark) share: a relay on an
//! ephemeral port, a plain HTTP/1.1 client that sends exactly the headers it
//! is given, a DevTools client over a WebSocket, and headless Chromium
//! behind a guard that kills its whole process group however a test ends.
//!
//! Each test binary uses part of this, hence `dead_code` is allowed.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yard_relay::{Access, RelayConfig, RelayError};

/// The token the tests' relays use.
pub(crate) const TOKEN: &str = "relay-test-token";

/// How long any one step of a test may take before it fails instead of
/// hanging.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// A relay serving in the background until stopped or dropped.
pub(crate) struct RunningRelay {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RelayError>>>,
}

impl RunningRelay {
    /// Starts a relay on `127.0.0.1:0` in front of `upstream`.
    pub(crate) async fn start(upstream: &str, access: Access) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = RelayConfig {
            upstream: upstream.to_owned(),
            access,
        };
        let task = tokio::spawn(yard_relay::run(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts a relay with [`TOKEN`].
    pub(crate) async fn with_token(upstream: &str) -> Self {
        Self::start(upstream, Access::Token(TOKEN.to_owned())).await
    }

    /// Stops the relay and waits for `run` to return.
    pub(crate) async fn stop(mut self) -> Result<(), RelayError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(STEP, task).await.unwrap().unwrap()
    }
}

impl Drop for RunningRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request on a new connection with exactly `headers` (plus
/// `Host: addr` when they name none) and reads the whole answer.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Answer {
    request_with_body(addr, method, target, headers, Bytes::new()).await
}

pub(crate) async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut builder = Request::builder().method(method).uri(target);
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            builder = builder.header("host", addr.to_string());
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = sender
            .send_request(builder.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    };
    tokio::time::timeout(STEP, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {target} got no answer within {STEP:?}"))
}

/// The `Authorization` header carrying [`TOKEN`].
pub(crate) fn bearer() -> (&'static str, String) {
    ("authorization", format!("Bearer {TOKEN}"))
}

/// A DevTools client on one WebSocket.
pub(crate) struct Cdp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Cdp {
    pub(crate) async fn connect(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
        Self { ws, next_id: 0 }
    }

    /// Sends a command and waits for its answer (events in between are
    /// skipped); the answer's `result`.
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(message)).await.unwrap();
        let answer = tokio::time::timeout(STEP, async {
            loop {
                let message = self.ws.next().await.unwrap().unwrap();
                let Message::Text(text) = message else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["id"] == id {
                    return value;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method} got no answer within {STEP:?}"));
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    /// `Runtime.evaluate`, returning the value.
    pub(crate) async fn evaluate(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        result["result"]["value"].clone()
    }
}

/// Headless Chromium with its DevTools on an ephemeral port; the whole
/// process group is killed when this is dropped, panics included.
pub(crate) struct Chromium {
    pub(crate) port: u16,
    child: Child,
    // Dropped after the browser is dead (fields drop after `drop`).
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub(crate) fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("/usr/bin/chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot start /usr/bin/chromium");
        let mut browser = Self {
            port: 0,
            child,
            _profile: profile,
        };
        browser.port = wait_for_port(browser._profile.path(), &mut browser.child);
        browser
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub(crate) fn upstream(&self) -> String {
        self.addr().to_string()
    }
}

/// The port Chromium writes to `DevToolsActivePort` once it listens.
fn wait_for_port(profile: &Path, child: &mut Child) -> u16 {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok())
        {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chromium exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "chromium did not write {} in time",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id().cast_signed());
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
