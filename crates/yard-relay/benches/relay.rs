//! Benchmark: the relay against nginx set up as the usual DevTools relay,
//! in the same run, in front of the same headless Chromium, with Chromium
//! itself as the reference.
//!
//! Two figures matter to a DevTools client: how many `/json/version`
//! requests a second go through (driven by `wrk`), and how fast DevTools
//! messages make the round trip over one WebSocket to a page (sequential
//! `Runtime.evaluate("1+1")`). The table ends with relay ÷ nginx; 1.0 or
//! more means the relay is at least as fast.
//!
//! Run: `cargo bench -p yard-relay --bench relay`. Needs /usr/bin/chromium,
//! /usr/sbin/nginx and /usr/bin/wrk. `YARD_BENCH_TRIPS` sets the number of
//! round trips (default 5000), `YARD_BENCH_SECONDS` wrk's duration (5),
//! `YARD_BENCH_RELAY_WORKERS` the relay's worker threads (one a core).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Chromium, TOKEN, request};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use yard_relay::{Access, RelayConfig};

/// Rounds the round trips are split into, taking turns between the three
/// paths so that drift on the machine touches all of them alike.
const ROUNDS: usize = 5;
const WARM_UP: usize = 500;

fn main() {
    let trips: usize = env_number("YARD_BENCH_TRIPS", 5000);
    let seconds: u64 = env_number("YARD_BENCH_SECONDS", 5);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);

    let browser = Chromium::start();
    let relay = Relay::start(
        browser.upstream(),
        env_number("YARD_BENCH_RELAY_WORKERS", cores),
    );
    let nginx = Nginx::start(browser.port, cores);

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = format!("Bearer {TOKEN}");
    let headers = [("authorization", auth.as_str())];

    // One page target, reached three ways.
    let page = client.block_on(async {
        let created = request(relay.addr, "PUT", "/json/new?about:blank", &headers).await;
        assert_eq!(created.status, 200, "{}", created.text());
        created.json()
    });
    let id = page["id"].as_str().unwrap().to_owned();
    let relay_ws = page["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
    let nginx_ws = client.block_on(page_url(nginx.addr, &id));
    let direct_ws = client.block_on(page_url(browser.addr(), &id));
    assert!(relay_ws.contains(&relay.addr.to_string()), "{relay_ws}");
    assert!(nginx_ws.contains(&nginx.addr.to_string()), "{nginx_ws}");

    println!(
        "yard-relay benchmark: Chromium {}, {cores} cores, wrk -t2 -c32 -d{seconds}s, {trips} round trips",
        client.block_on(async {
            request(browser.addr(), "GET", "/json/version", &[])
                .await
                .json()["Browser"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
    );

    let paths = [
        ("relay", relay.addr, relay_ws),
        ("nginx", nginx.addr, nginx_ws),
        ("direct", browser.addr(), direct_ws),
    ];
    let rps: Vec<f64> = paths
        .iter()
        .map(|(name, addr, _)| wrk(name, &format!("http://{addr}/json/version"), &auth, seconds))
        .collect();

    let trips_each = (trips / ROUNDS).max(1);
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let mut elapsed = vec![Duration::ZERO; paths.len()];
    client.block_on(async {
        let mut sockets = Vec::new();
        for (_, _, url) in &paths {
            let mut socket = Socket::connect(url).await;
            socket.trips(WARM_UP).await;
            sockets.push(socket);
        }
        for _ in 0..ROUNDS {
            for (i, socket) in sockets.iter_mut().enumerate() {
                let started = Instant::now();
                latencies[i].extend(socket.trips(trips_each).await);
                elapsed[i] += started.elapsed();
            }
        }
    });

    let stats: Vec<Stats> = latencies
        .iter_mut()
        .zip(&elapsed)
        .map(|(l, e)| Stats::of(l, *e))
        .collect();
    println!();
    println!(
        "{:<30} {:>10} {:>10} {:>10} {:>13}",
        "", "relay", "nginx", "direct", "relay/nginx"
    );
    row("/json/version requests/s", &rps, true);
    row(
        "round trips/s",
        &stats.iter().map(|s| s.per_second).collect::<Vec<_>>(),
        true,
    );
    row(
        "round trip mean (µs)",
        &stats.iter().map(|s| s.mean).collect::<Vec<_>>(),
        false,
    );
    row(
        "round trip p50 (µs)",
        &stats.iter().map(|s| s.p50).collect::<Vec<_>>(),
        false,
    );
    row(
        "round trip p99 (µs)",
        &stats.iter().map(|s| s.p99).collect::<Vec<_>>(),
        false,
    );
    println!("(latency rows: relay/nginx is nginx ÷ relay, so above 1.0 is faster there too)");

    client.block_on(async {
        let _ = request(relay.addr, "GET", &format!("/json/close/{id}"), &headers).await;
    });
    relay.stop();
    drop(nginx);
    drop(browser);
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn row(label: &str, values: &[f64], higher_is_better: bool) {
    let ratio = if higher_is_better {
        values[0] / values[1]
    } else {
        values[1] / values[0]
    };
    println!(
        "{label:<30} {:>10.0} {:>10.0} {:>10.0} {:>13.2}",
        values[0], values[1], values[2], ratio
    );
}

/// The page's WebSocket URL as `/json/list` at `addr` gives it.
async fn page_url(addr: SocketAddr, id: &str) -> String {
    let list = request(addr, "GET", "/json/list", &[]).await.json();
    let page = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{addr} does not list page {id}"));
    page["webSocketDebuggerUrl"].as_str().unwrap().to_owned()
}

/// Runs wrk against `url`; requests per second.
fn wrk(name: &str, url: &str, auth: &str, seconds: u64) -> f64 {
    let output = Command::new("/usr/bin/wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "-H"])
        .arg(format!("Authorization: {auth}"))
        .arg(url)
        .output()
        .expect("cannot run /usr/bin/wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    for line in text.lines() {
        if line.contains("Non-2xx") || line.contains("Socket errors") {
            println!("wrk {name}: {}", line.trim());
        }
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk gave no Requests/sec for {name}: {text}"))
}

/// One DevTools WebSocket to the page.
struct Socket {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Socket {
    async fn connect(url: &str) -> Self {
        // With Nagle's algorithm off, as a DevTools client would.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
        Self { ws, next_id: 0 }
    }

    /// `count` sequential `Runtime.evaluate("1+1")`; each one's time.
    async fn trips(&mut self, count: usize) -> Vec<Duration> {
        let mut times = Vec::with_capacity(count);
        for _ in 0..count {
            self.next_id += 1;
            let id = self.next_id;
            let message = format!(
                r#"{{"id":{id},"method":"Runtime.evaluate","params":{{"expression":"1+1"}}}}"#
            );
            let expected = format!(r#""id":{id},"#);
            let started = Instant::now();
            self.ws.send(Message::text(message)).await.unwrap();
            loop {
                match self.ws.next().await.unwrap().unwrap() {
                    Message::Text(text) if text.contains(&expected) => {
                        assert!(text.contains(r#""value":2"#), "{text}");
                        break;
                    }
                    _ => {}
                }
            }
            times.push(started.elapsed());
        }
        times
    }
}

struct Stats {
    per_second: f64,
    mean: f64,
    p50: f64,
    p99: f64,
}

impl Stats {
    fn of(latencies: &mut [Duration], elapsed: Duration) -> Self {
        latencies.sort_unstable();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |q: f64| {
            micros(latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)])
        };
        Self {
            per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
            mean: micros(latencies.iter().sum::<Duration>()) / latencies.len() as f64,
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// The relay on its own multi-threaded runtime, as a deployment runs it.
struct Relay {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Relay {
    fn start(upstream: String, workers: usize) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, listening) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready.send(listener.local_addr().unwrap()).unwrap();
                let config = RelayConfig {
                    upstream,
                    access: Access::Token(TOKEN.to_owned()),
                };
                yard_relay::run(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = listening.recv().unwrap();
        Self { addr, stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// nginx with the usual DevTools relay configuration, killed (with its
/// workers) when dropped.
struct Nginx {
    addr: SocketAddr,
    child: Child,
    _prefix: tempfile::TempDir,
}

impl Nginx {
    fn start(cdp: u16, workers: usize) -> Self {
        let prefix = tempfile::tempdir().unwrap();
        let addr = free_port();
        let dir = prefix.path().display().to_string();
        std::fs::create_dir_all(prefix.path().join("tmp")).unwrap();
        let user = if nix::unistd::Uid::effective().is_root() {
            "user root;"
        } else {
            ""
        };
        let proxy = format!(
            "proxy_pass http://127.0.0.1:{cdp};
            proxy_http_version 1.1;
            proxy_set_header Host 127.0.0.1:{cdp};
            proxy_set_header Origin \"\";
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1d;
            proxy_send_timeout 1d;"
        );
        let config = format!(
            "{user}
worker_processes {workers};
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    server {{
        listen {addr};
        location / {{
            {proxy}
        }}
        location /json {{
            {proxy}
            proxy_set_header Accept-Encoding \"\";
            sub_filter '127.0.0.1:{cdp}' '$http_host';
            sub_filter_once off;
            sub_filter_types application/json;
        }}
    }}
}}
"
        );
        let conf = prefix.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot start /usr/sbin/nginx");
        let nginx = Self {
            addr,
            child,
            _prefix: prefix,
        };
        nginx.wait_until_listening(&nginx._prefix.path().join("error.log"));
        nginx
    }

    fn wait_until_listening(&self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {}: {}",
                self.addr,
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id().cast_signed());
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A loopback address with a port nothing listens on.
fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}
