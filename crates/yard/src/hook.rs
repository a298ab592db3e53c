//! `yard hook`: the command an agent's client runs as its hook.
//!
//! It reads one hook event on stdin, asks the yard over the control socket
//! (`POST /hook` with the agent's credential) and prints the answer for the
//! client. When the yard cannot be asked it says so on stderr and answers by
//! the fail mode: `closed` (the default) refuses tool calls, `open` lets the
//! agent go ahead. It never waits longer than its timeout (at most 5 min)
//! for a decision, except for an event held for a person: then the yard
//! answers at once with the questions' ids, and it waits on them until
//! their deadline, reconnecting through a yard restart, never asking twice.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::time::Instant;
use yard_api::{ApiError, Decision, HookEvent, HookPending, HookWait, hook_output};

use crate::cli::{FailMode, HookArgs};

/// The largest hook event read from stdin.
const MAX_INPUT: u64 = 1024 * 1024;

/// Why the yard gave no decision.
enum NoAnswer {
    /// It could not be reached, or did not answer in time.
    Unreachable(String),
    /// It refused the request, with its reason.
    Refused { status: u16, message: String },
}

pub(crate) async fn run(args: &HookArgs) -> ExitCode {
    let mut input = Vec::new();
    if let Err(e) = tokio::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut input)
        .await
    {
        eprintln!("yard hook: cannot read the hook event on stdin: {e}");
        return ExitCode::FAILURE;
    }
    if input.len() as u64 > MAX_INPUT {
        eprintln!("yard hook: the hook event on stdin is larger than 1 MiB");
        return ExitCode::FAILURE;
    }
    let event = match event_of(&input) {
        Ok(event) => event,
        Err(message) => {
            eprintln!("yard hook: {message}");
            return ExitCode::FAILURE;
        }
    };
    let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) else {
        return fail(args, event, "YARD_AGENT_TOKEN is not set");
    };
    let answer = match ask(&args.socket, token, "/hook", input, args.timeout).await {
        Ok(Answer::Held(pending)) => wait_held(&args.socket, token, &pending).await,
        other => other,
    };
    match answer {
        Ok(Answer::Held(_)) => fail(args, event, "the yard held the event twice"),
        Ok(Answer::Decided(answer)) => {
            if answer.as_ref() != b"{}" {
                println!("{}", String::from_utf8_lossy(&answer));
            }
            ExitCode::SUCCESS
        }
        // The request itself was wrong: retrying or failing open would not help.
        Err(NoAnswer::Refused {
            status: 400,
            message,
        }) => {
            eprintln!("yard hook: the yard rejected the event: {message}");
            ExitCode::FAILURE
        }
        Err(NoAnswer::Refused { status, message }) => {
            fail(args, event, &format!("{status}: {message}"))
        }
        Err(NoAnswer::Unreachable(reason)) => fail(args, event, &reason),
    }
}

/// The event named in the hook input, or why the input is not one.
fn event_of(input: &[u8]) -> Result<HookEvent, String> {
    let value: serde_json::Value = serde_json::from_slice(input)
        .map_err(|e| format!("the hook event on stdin is not JSON: {e}"))?;
    let name = value
        .get("hook_event_name")
        .and_then(|v| v.as_str())
        .ok_or("the hook event on stdin has no hook_event_name")?;
    name.parse::<HookEvent>().map_err(|e| e.to_string())
}

/// Answers by the fail mode when the yard gave no decision.
fn fail(args: &HookArgs, event: HookEvent, reason: &str) -> ExitCode {
    let mode = match args.fail {
        FailMode::Closed => "closed",
        FailMode::Open => "open",
    };
    eprintln!(
        "yard hook: the yard at {} gave no decision ({reason}); failing {mode}",
        args.socket.display()
    );
    match args.fail {
        FailMode::Open => ExitCode::SUCCESS,
        FailMode::Closed if event.is_tool_gate() => {
            let why = format!("the yard gave no decision ({reason}), and this agent fails closed");
            if let Some(answer) = hook_output(event, Decision::Deny, &why) {
                println!("{answer}");
            }
            ExitCode::SUCCESS
        }
        // Blocking a stop or a prompt would trap the agent; report instead.
        FailMode::Closed => ExitCode::FAILURE,
    }
}

/// What the yard said.
enum Answer {
    /// The hook output.
    Decided(Bytes),
    /// Held for a person: wait on these questions.
    Held(HookPending),
}

/// How much past the questions' deadline the wait for a held event goes
/// on: the yard settles them at the deadline, and may be restarting then.
const HELD_GRACE: Duration = Duration::from_secs(30);

/// Waits on the questions of a held event until the yard answers; a
/// dropped connection (the yard restarting) is retried until the deadline.
async fn wait_held(socket: &Path, token: &str, pending: &HookPending) -> Result<Answer, NoAnswer> {
    let deadline = Instant::now() + Duration::from_millis(pending.wait_ms) + HELD_GRACE;
    let body = serde_json::to_vec(&HookWait {
        question_ids: pending.question_ids.clone(),
    })
    .map_err(|e| NoAnswer::Unreachable(e.to_string()))?;
    let mut pause = Duration::from_millis(100);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ask(socket, token, "/hook/wait", body.clone(), left).await {
            Err(NoAnswer::Unreachable(reason)) if Instant::now() + pause < deadline => {
                eprintln!("yard hook: waiting for a person's answer: {reason}; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// `POST path` over the Unix socket. A socket that is missing or refuses
/// connections is tried again (the yard may be restarting) until the
/// deadline; everything else ends the attempt.
async fn ask(
    socket: &Path,
    token: &str,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, NoAnswer> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    let stream = loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => break stream,
            Err(e) if Instant::now() + pause >= deadline => {
                return Err(NoAnswer::Unreachable(format!("cannot connect: {e}")));
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    };
    let exchange = async {
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| NoAnswer::Unreachable(e.to_string()))?;
        tokio::spawn(connection);
        let request = Request::post(path)
            .header("host", "yard")
            .header("content-type", "application/json")
            .header("prefer", "respond-async")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| NoAnswer::Unreachable(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| NoAnswer::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| NoAnswer::Unreachable(e.to_string()))?
            .to_bytes();
        if status == hyper::StatusCode::ACCEPTED {
            return serde_json::from_slice::<HookPending>(&body)
                .map(Answer::Held)
                .map_err(|e| {
                    NoAnswer::Unreachable(format!("a held event without its questions: {e}"))
                });
        }
        if status.is_success() {
            return Ok(Answer::Decided(body));
        }
        let message = serde_json::from_slice::<ApiError>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        Err(NoAnswer::Refused {
            status: status.as_u16(),
            message,
        })
    };
    tokio::time::timeout_at(deadline, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(NoAnswer::Unreachable(format!(
                "no answer within {}s",
                timeout.as_secs()
            )))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_explained() {
        assert!(event_of(b"not json").unwrap_err().contains("not JSON"));
        assert!(event_of(b"{}").unwrap_err().contains("hook_event_name"));
        assert!(
            event_of(br#"{"hook_event_name":"Lunch"}"#)
                .unwrap_err()
                .contains("unknown hook event")
        );
        assert_eq!(
            event_of(br#"{"hook_event_name":"PreToolUse"}"#),
            Ok(HookEvent::PreToolUse)
        );
    }
}
