//! `yard`: the agentyard daemon and its command line.
//!
//! A thin shell: it parses arguments, wires the library crates together and
//! turns outcomes into exit codes: 0 success, 1 failure, 2 usage (clap's
//! own code for a bad command line).

#![allow(clippy::print_stdout)]

mod agent_commands;
mod aio;
mod aio_forge;
mod cli;
mod commands;
mod doctor;
mod hook;
mod prompt;
mod prompt_panes;
mod relay;
mod serve;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// `yard mcp`: bridges stdio to the daemon's `/mcp`.
async fn mcp(args: &cli::McpArgs) -> anyhow::Result<ExitCode> {
    use yard_mcp::bridge::{Upstream, run};
    let (upstream, token) = match &args.socket {
        Some(socket) => (
            Upstream::Socket(socket.display().to_string()),
            args.agent_token
                .clone()
                .or_else(|| args.client.token.clone()),
        ),
        None => (
            Upstream::Url(format!("{}/mcp", args.client.url.trim_end_matches('/'))),
            commands::token(&args.client)?,
        ),
    };
    run(upstream, token).await?;
    Ok(ExitCode::SUCCESS)
}

/// `yard aio` as PID 1, with no `tini` in front: a small init that runs
/// the real `yard aio` as its child and reaps the container's orphans.
fn init() -> ExitCode {
    let arguments: Vec<_> = std::env::args_os().skip(1).collect();
    let outcome = std::env::current_exe().and_then(|yard| yard_aio::init::run(&yard, &arguments));
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: as PID 1, cannot run yard aio as a child: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    if let Err(e) = yard_aio::init::clear_signal_mask() {
        eprintln!("warning: cannot clear the inherited signal mask: {e}");
    }
    let cli = Cli::parse();
    if let Command::Aio(aio) = &cli.command
        && aio.action.is_none()
        && yard_aio::init::is_pid1()
    {
        return init();
    }
    // The daemon logs what it does; a client command only its problems.
    let default_level = match cli.command {
        Command::Serve(_) | Command::Aio(_) | Command::Relay(_) => "info",
        Command::Hook(_) | Command::Mcp(_) => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Hook(args) => Ok(hook::run(&args).await),
            Command::Mcp(args) => mcp(&args).await,
            Command::Doctor(args) => doctor::run(&args).await,
            Command::Aio(aio) => match *aio {
                cli::AioCommand {
                    action: Some(cli::AioAction::Status { client }),
                    ..
                } => aio::status(&client).await,
                cli::AioCommand { action: None, run } => aio::run(run).await,
            },
            Command::Relay(args) => relay::run(&args).await,
            Command::Prompt(args) => prompt::run(&args).await,
            Command::Agents {
                action: None,
                watch: true,
                client,
            } => prompt::watch_agents(&client).await,
            Command::Agents {
                action: Some(_),
                watch: true,
                ..
            } => Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--watch shows the table of agents; it does not go with `prune`",
                )
                .exit(),
            command => commands::run(command).await,
        }
    });
    // A read of stdin (`yard attach`) may still wait in a blocking thread;
    // it cannot be cancelled, and the command is done.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
