//! How fast a person's answer reaches the agent that waits for it, against
//! a bare WebSocket echo in the same run.
//!
//! Ours: an agent's hook call (`POST /hook` on the control socket) is held
//! for a person by a policy `ask`; an answering client on
//! `/api/questions/ws` answers it. Measured from the moment the answer is
//! sent to the moment the hook call returns: the yard's work in between is
//! the WebSocket read, the decision (checked against the question kept in
//! memory, appended to the answer log), the wake-up of the waiting call and
//! its HTTP answer; the store's write follows off that path. Baseline: one
//! round trip of the same answer message to a WebSocket server that echoes
//! it (tokio-tungstenite on loopback, in this process), the least any
//! answer over a WebSocket can cost. A second baseline echoes only after
//! writing the answer to a store first (the store's conditional write, on
//! a SQLite file of its own): what the answer would cost if the agent
//! waited for the store. The three are measured in turn, one of each per
//! question, p50 and p99 over 1000 questions each, in three rounds.
//!
//! The agent's side is a bare HTTP/1.1 exchange read in one task, so the
//! time measured is the yard's, not a client library's.
//!
//! Run with `cargo bench -p yard --bench questions`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yard_store::Store;
use yard_testkit::{Daemon, DaemonSetup};

#[path = "../tests/support/mod.rs"]
mod support;

const YARD: &str = env!("CARGO_BIN_EXE_yard");
const QUESTIONS: usize = 1000;
/// Rounds of [`QUESTIONS`] each: on a shared machine one round's p99 is
/// a handful of samples, so the median of three is what is reported.
const ROUNDS: usize = 3;
const POLICY: &str = "[[rules]]\ntool = \"Bash\"\ncommand = \"psql*\"\ndecision = \"ask\"\n";
const EVENT: &str = r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"psql -c 'drop table t'"}}"#;

#[tokio::main]
async fn main() {
    let daemon = Daemon::start(
        YARD.as_ref(),
        DaemonSetup {
            env: vec![("RUST_LOG".into(), "warn".into())],
            files: vec![("policy.toml".into(), POLICY.into())],
            ..DaemonSetup::default()
        },
    );
    let store = Store::open(&Store::sqlite_url(daemon.data_dir()))
        .await
        .unwrap();
    let token = support::agent_token();
    support::running_agent(&store, "bench", "bench", Some(&token)).await;
    let socket = daemon.data_dir().join("control.sock");

    let mut answering = connect(&daemon).await;
    next_of(&mut answering, "pending").await;
    println!("answer sent -> waiting call returns, {QUESTIONS} questions a round");
    let mut ratios = Vec::with_capacity(ROUNDS);
    for round in 1..=ROUNDS {
        let mut echo = echo_server().await;
        let mut writing = writing_echo_server().await;
        // Interleaved, one of each in turn, so a noisy moment of the
        // machine falls on all three alike.
        let mut ours = Vec::with_capacity(QUESTIONS);
        let mut baseline = Vec::with_capacity(QUESTIONS);
        let mut durable = Vec::with_capacity(QUESTIONS);
        for n in 0..QUESTIONS {
            let waiting = tokio::spawn(hook_call(socket.clone(), token.clone()));
            let asked = next_of(&mut answering, "asked").await;
            let id = asked["question"]["id"].as_str().unwrap().to_owned();
            let answer = json!({"type": "answer", "id": id, "answer": "allow"}).to_string();
            let sent = Instant::now();
            answering.send(Message::Text(answer.into())).await.unwrap();
            let returned = waiting.await.unwrap();
            ours.push(returned.duration_since(sent));
            next_of(&mut answering, "settled").await;

            let answer = json!({"type": "answer", "id": id, "answer": "allow"}).to_string();
            baseline.push(round_trip(&mut echo, answer).await);

            let answer =
                json!({"type": "answer", "id": format!("q{n}"), "answer": "allow"}).to_string();
            durable.push(round_trip(&mut writing, answer).await);
        }
        let (ours50, ours99) = percentiles(&mut ours);
        let (echo50, echo99) = percentiles(&mut baseline);
        let (write50, write99) = percentiles(&mut durable);
        println!("round {round}:");
        println!(
            "  yard (WS answer -> held hook call returns): p50 {ours50:.3} ms, p99 {ours99:.3} ms"
        );
        println!(
            "  bare WebSocket echo round trip:            p50 {echo50:.3} ms, p99 {echo99:.3} ms"
        );
        println!(
            "  echo after a write to a store:             p50 {write50:.3} ms, p99 {write99:.3} ms"
        );
        println!(
            "  ratio to the bare echo: p50 {:.2}, p99 {:.2}; to the writing echo: p50 {:.2}, p99 {:.2}",
            ours50 / echo50,
            ours99 / echo99,
            ours50 / write50,
            ours99 / write99
        );
        ratios.push((ours50 / echo50, ours99 / echo99));
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "median of the rounds, ratio to the bare echo: p50 {:.2}, p99 {:.2} (goal <= 2)",
        median(ratios.iter().map(|r| r.0).collect()),
        median(ratios.iter().map(|r| r.1).collect())
    );
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(daemon: &Daemon) -> Socket {
    let url = format!(
        "ws://{}/api/questions/ws",
        daemon.url().trim_start_matches("http://")
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", daemon.token()).parse().unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
}

async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        if let Message::Text(text) = socket.next().await.unwrap().unwrap() {
            let message: Value = serde_json::from_str(text.as_str()).unwrap();
            if message["type"] == kind {
                return message;
            }
        }
    }
}

/// The agent's side: `POST /hook` on the control socket, held until
/// answered; returns when its answer arrived. A bare HTTP/1.1 exchange
/// read in this one task, so the time is the yard's and not a client
/// library's hand-offs between its own tasks.
async fn hook_call(socket: std::path::PathBuf, token: String) -> Instant {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let request = format!(
        "POST /hook HTTP/1.1\r\nhost: yard\r\ncontent-type: application/json\r\n\
         authorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n{EVENT}",
        EVENT.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let returned = loop {
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "the yard closed the hook call");
        response.extend_from_slice(&chunk[..read]);
        if complete(&response) {
            break Instant::now();
        }
    };
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"allow\""), "{text}");
    returned
}

/// Whether `response` holds a whole HTTP/1.1 response with a
/// `content-length` body.
fn complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    response.len() >= end + 4 + length
}

/// A WebSocket server on loopback that echoes every message; returns a
/// client connected to it.
async fn echo_server() -> Socket {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(message)) = socket.next().await {
            if message.is_text() && socket.send(message).await.is_err() {
                break;
            }
        }
    });
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    socket
}

/// A WebSocket server on loopback that, for each answer message, writes
/// the answer to its question in a store of its own (SQLite, questions
/// `q0`, `q1`, ... of one running agent, pending) with the store's
/// conditional write, then echoes the message; returns a client connected
/// to it.
async fn writing_echo_server() -> Socket {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
    let agent = support::running_agent(&store, "bench", "bench", None).await;
    for n in 0..QUESTIONS {
        let question = yard_core::Question {
            id: format!("q{n}"),
            agent_id: agent.id.clone(),
            owner_id: None,
            kind: yard_core::QuestionKind::Permission,
            message: "may I?".to_owned(),
            context: None,
            deadline: yard_core::Timestamp(i64::MAX / 2),
            created_at: support::now(),
            outcome: yard_core::QuestionOutcome::Pending,
            origin: None,
            agent_task: None,
        };
        store.insert_question(&question).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _dir = dir;
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = &message else {
                continue;
            };
            let answer: Value = serde_json::from_str(text.as_str()).unwrap();
            let id = answer["id"].as_str().unwrap();
            let written = store
                .answer_question(id, "allow", "bench", None, support::now())
                .await
                .unwrap();
            assert!(written, "{id} was pending");
            if socket.send(message).await.is_err() {
                break;
            }
        }
    });
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    socket
}

/// One message's round trip through an echoing server.
async fn round_trip(socket: &mut Socket, message: String) -> Duration {
    let sent = Instant::now();
    socket.send(Message::Text(message.into())).await.unwrap();
    loop {
        if let Message::Text(_) = socket.next().await.unwrap().unwrap() {
            return sent.elapsed();
        }
    }
}

/// p50 and p99, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index].as_secs_f64() * 1e3
    };
    (at(0.50), at(0.99))
}
