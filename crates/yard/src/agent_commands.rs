//! The agent commands: `spawn`, `agents`, `logs`, `attach`, `stop`, `diff`,
//! `merge`, `audit`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use yard_api::{AgentView, AttachControl, SpawnRequest};

use crate::cli::{AgentsAction, ClientArgs, SpawnArgs};
use crate::commands::{connect, explain, print_json};

/// Ctrl-E: the first key of the detach sequence.
const DETACH_FIRST: u8 = 0x05;
/// `e`: the second.
const DETACH_SECOND: u8 = b'e';

pub(crate) async fn spawn(args: &SpawnArgs) -> anyhow::Result<ExitCode> {
    let repo = std::path::absolute(&args.repo)
        .with_context(|| format!("cannot resolve {}", args.repo.display()))?;
    let request = SpawnRequest {
        repo: repo.display().to_string(),
        count: args.count,
        task: args.task.clone(),
        image: args.image.clone(),
        base: args.base.clone(),
    };
    let result = connect(&args.client)?
        .spawn(&request)
        .await
        .map_err(explain)?;
    let failed = result
        .agents
        .iter()
        .filter(|a| a.status == yard_api::AgentStatus::Failed)
        .count();
    if args.client.json {
        print_json(&result)?;
    } else {
        print_agents(&result.agents);
        for agent in result
            .agents
            .iter()
            .filter(|a| a.status == yard_api::AgentStatus::Failed)
        {
            eprintln!(
                "error: agent {} did not start: {}",
                agent.id,
                agent.message.as_deref().unwrap_or("unknown")
            );
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) async fn agents(
    action: Option<&AgentsAction>,
    args: &ClientArgs,
) -> anyhow::Result<ExitCode> {
    let client = connect(args)?;
    match action {
        None => {
            let list = client.agents().await.map_err(explain)?;
            if args.json {
                print_json(&list)?;
            } else if list.agents.is_empty() {
                println!("no agents");
            } else {
                print_agents(&list.agents);
            }
        }
        Some(AgentsAction::Prune) => {
            let result = client.prune().await.map_err(explain)?;
            if args.json {
                print_json(&result)?;
            } else {
                println!("pruned {} agent(s)", result.pruned.len());
                for agent in &result.pruned {
                    println!("  {}  {}", agent.id, agent.branch);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_agents(agents: &[AgentView]) {
    let owner_width = agents
        .iter()
        .filter_map(|a| a.owner.as_ref().map(String::len))
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:8}  {:8}  {:13}  {:owner_width$}  {:>6}  TASK",
        "ID", "STATUS", "BRANCH", "OWNER", "AGE"
    );
    for agent in agents {
        let task: String = agent
            .task
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(48)
            .collect();
        println!(
            "{:8}  {:8}  {:13}  {:owner_width$}  {:>6}  {task}",
            agent.id,
            agent.status.as_str(),
            agent.branch,
            agent.owner.as_deref().unwrap_or("-"),
            age(&agent.created_at)
        );
    }
}

/// "42s", "7m", "3h", "2d" since an RFC 3339 time.
fn age(rfc3339: &str) -> String {
    let Ok(then) = humantime::parse_rfc3339(rfc3339) else {
        return "?".to_owned();
    };
    let secs = SystemTime::now()
        .duration_since(then)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

pub(crate) async fn logs(
    id: &str,
    follow: bool,
    tail: Option<u32>,
    args: &ClientArgs,
) -> anyhow::Result<ExitCode> {
    let mut output = connect(args)?
        .logs(id, follow, tail)
        .await
        .map_err(explain)?;
    let mut stdout = tokio::io::stdout();
    while let Some(chunk) = output.next().await {
        stdout.write_all(&chunk.map_err(explain)?).await?;
        stdout.flush().await?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn stop(id: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let agent = connect(args)?.stop_agent(id).await.map_err(explain)?;
    if args.json {
        print_json(&agent)?;
    } else {
        println!(
            "stopped {} ({}); its branch {} stays",
            agent.id,
            agent.status.as_str(),
            agent.branch
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn diff(id: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let diff = connect(args)?.diff(id).await.map_err(explain)?;
    if args.json {
        print_json(&diff)?;
        return Ok(ExitCode::SUCCESS);
    }
    let short = |sha: &str| sha.chars().take(10).collect::<String>();
    println!(
        "{} from {} ({} commit(s))",
        diff.agent.branch,
        short(&diff.agent.base_commit),
        diff.commits.len()
    );
    for commit in &diff.commits {
        println!(
            "  {} {} ({})",
            short(&commit.sha),
            commit.subject,
            commit.author
        );
    }
    println!();
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(diff.patch.as_bytes())?;
    if !diff.patch.ends_with('\n') && !diff.patch.is_empty() {
        writeln!(stdout)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn merge(id: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let merged = connect(args)?.merge(id).await.map_err(explain)?;
    if args.json {
        print_json(&merged)?;
    } else if merged.up_to_date {
        println!("already merged into {}", merged.into);
    } else {
        println!(
            "merged into {} as {}",
            merged.into,
            merged.commit.as_deref().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn audit(id: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let audit = connect(args)?.audit(id).await.map_err(explain)?;
    if args.json {
        print_json(&audit)?;
        return Ok(ExitCode::SUCCESS);
    }
    if audit.entries.is_empty() {
        println!("no hook calls from agent {}", audit.agent_id);
    }
    for entry in &audit.entries {
        let decision = if entry.asked {
            format!("{} (asked)", entry.decision.as_str())
        } else {
            entry.decision.as_str().to_owned()
        };
        println!(
            "{}  {:18} {:10} {:12} {:14} {}",
            entry.at,
            entry.event,
            entry.tool.as_deref().unwrap_or("-"),
            decision,
            entry.rule,
            entry.subject.as_deref().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Puts the terminal in raw mode for as long as it lives.
struct RawMode;

impl RawMode {
    fn enable() -> Option<Self> {
        crossterm::terminal::enable_raw_mode().ok().map(|()| Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Splits typed bytes into what goes to the agent and whether the person
/// detached (ctrl-e, then e). A ctrl-e at the end of one read waits for the
/// next one to see what follows.
#[derive(Debug, Default)]
struct DetachWatch {
    pending_ctrl_e: bool,
}

impl DetachWatch {
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut forward = Vec::with_capacity(input.len());
        for &byte in input {
            if self.pending_ctrl_e {
                self.pending_ctrl_e = false;
                if byte == DETACH_SECOND {
                    return (forward, true);
                }
                forward.push(DETACH_FIRST);
            }
            if byte == DETACH_FIRST {
                self.pending_ctrl_e = true;
            } else {
                forward.push(byte);
            }
        }
        (forward, false)
    }
}

pub(crate) async fn attach(id: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let socket = connect(args)?.attach(id).await.map_err(explain)?;
    eprintln!("attached to agent {id}; detach with ctrl-e then e\r");
    let raw = std::io::stdin()
        .is_terminal()
        .then(RawMode::enable)
        .flatten();
    let (mut to_agent, mut from_agent) = socket.split();
    let output = async {
        let mut stdout = tokio::io::stdout();
        while let Some(Ok(message)) = from_agent.next().await {
            match message {
                Message::Binary(bytes) => stdout.write_all(&bytes).await?,
                Message::Text(text) => stdout.write_all(text.as_bytes()).await?,
                Message::Close(_) => break,
                _ => continue,
            }
            stdout.flush().await?;
        }
        Ok::<bool, std::io::Error>(false)
    };
    let input = async {
        let mut stdin = tokio::io::stdin();
        let mut watch = DetachWatch::default();
        let mut buffer = [0_u8; 4096];
        // The agent's terminal takes this one's size now and whenever the
        // window changes (SIGWINCH).
        let mut window_changes =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
        if let Some(size) = window_size() {
            let _ = to_agent.send(size).await;
        }
        loop {
            let read = tokio::select! {
                read = stdin.read(&mut buffer) => read?,
                _ = window_changes.recv() => {
                    if let Some(size) = window_size()
                        && to_agent.send(size).await.is_err()
                    {
                        return Ok(false);
                    }
                    continue;
                }
            };
            if read == 0 {
                return Ok(false);
            }
            let (forward, detached) = watch.feed(&buffer[..read]);
            if !forward.is_empty()
                && to_agent
                    .send(Message::Binary(forward.into()))
                    .await
                    .is_err()
            {
                return Ok(false);
            }
            if detached {
                let _ = to_agent.send(Message::Close(None)).await;
                return Ok::<bool, std::io::Error>(true);
            }
        }
    };
    let detached = tokio::select! {
        ended = output => ended?,
        detached = input => detached?,
    };
    drop(raw);
    eprintln!(
        "\r\n{}",
        if detached {
            "detached; the agent keeps running"
        } else {
            "the agent's session ended"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// This terminal's size as the attach channel's resize message; `None`
/// when stdout is not a terminal.
fn window_size() -> Option<Message> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let (cols, rows) = crossterm::terminal::size().ok()?;
    let resize = serde_json::to_string(&AttachControl::Resize { cols, rows }).ok()?;
    Some(Message::Text(resize.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_needs_ctrl_e_then_e() {
        let mut watch = DetachWatch::default();
        assert_eq!(watch.feed(b"ls\n"), (b"ls\n".to_vec(), false));
        assert_eq!(
            watch.feed(&[DETACH_FIRST, b'x']),
            (vec![DETACH_FIRST, b'x'], false)
        );
        assert_eq!(watch.feed(&[b'a', DETACH_FIRST]), (b"a".to_vec(), false));
        assert_eq!(watch.feed(b"e"), (Vec::new(), true), "split across reads");
        let mut watch = DetachWatch::default();
        assert_eq!(
            watch.feed(&[b'q', DETACH_FIRST, b'e', b'z']),
            (b"q".to_vec(), true)
        );
        // Ctrl-p, ctrl-q (docker's own keys) pass through to the agent.
        assert_eq!(
            DetachWatch::default().feed(&[0x10, 0x11]),
            (vec![0x10, 0x11], false)
        );
    }
}
