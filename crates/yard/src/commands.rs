//! The client commands: `check`, `deploy`, `stacks`, `destroy`, `token`,
//! `config`, `forge init`.
//!
//! Each is a client of the REST API, prints text for people or JSON with
//! `--json`, and says what went wrong on stderr.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use yard_api::{CreateTokenRequest, StackHealth, TokenRoleView};
use yard_client::{ClientError, Outcome, YardClient};
use yard_services::DataDir;

use crate::agent_commands;
use crate::cli::{ClientArgs, Command, ConfigAction, ForgeAction, Role, StacksAction, TokenAction};

/// Runs a client command.
pub(crate) async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(_)
        | Command::Hook(_)
        | Command::Mcp(_)
        | Command::Doctor(_)
        | Command::Prompt(_)
        | Command::Aio(_)
        | Command::Relay(_) => bail!("not a client command"),
        Command::Health { client } => health(&client).await,
        Command::Check { name, client } => check(&name, &client).await,
        Command::Deploy { name, client } => deploy(&name, &client).await,
        Command::Stacks {
            action: None,
            client,
        } => stacks(&client).await,
        Command::Stacks {
            action: Some(StacksAction::Restart { name }),
            client,
        } => restart(&name, &client).await,
        Command::Stacks {
            action: Some(StacksAction::Update { name, image }),
            client,
        } => update(&name, &image, &client).await,
        Command::Destroy { name, client } => destroy(&name, &client).await,
        Command::Token { action, client } => token_command(&action, &client).await,
        Command::Config { action, client } => config_command(&action, &client).await,
        Command::Forge {
            action: ForgeAction::Init,
            client,
        } => forge_init(&client).await,
        Command::Spawn(args) => agent_commands::spawn(&args).await,
        Command::Agents { action, client, .. } => {
            agent_commands::agents(action.as_ref(), &client).await
        }
        Command::Logs {
            id,
            follow,
            tail,
            client,
        } => agent_commands::logs(&id, follow, tail, &client).await,
        Command::Attach { id, client } => agent_commands::attach(&id, &client).await,
        Command::Stop { id, client } => agent_commands::stop(&id, &client).await,
        Command::Diff { id, client } => agent_commands::diff(&id, &client).await,
        Command::Merge { id, client } => agent_commands::merge(&id, &client).await,
        Command::Audit { id, client } => agent_commands::audit(&id, &client).await,
    }
}

/// The token the arguments give, else the admin token in the data
/// directory, if there is one.
pub(crate) fn token(args: &ClientArgs) -> anyhow::Result<Option<String>> {
    match &args.token {
        Some(token) => Ok(Some(token.clone())),
        None => {
            let dir = DataDir::at(args.data_dir.clone().unwrap_or_else(DataDir::default_path));
            dir.read_admin_token()
                .with_context(|| format!("cannot read {}", dir.admin_token_path().display()))
        }
    }
}

/// A client for the daemon the arguments point at.
pub(crate) fn connect(args: &ClientArgs) -> anyhow::Result<YardClient> {
    Ok(YardClient::new(&args.url, token(args)?)?)
}

/// Adds a hint to errors whose fix is not obvious from the API's message.
pub(crate) fn explain(e: ClientError) -> anyhow::Error {
    match &e {
        ClientError::Api { status: 401, .. } => anyhow::anyhow!(
            "{e}\nhint: pass --token or set YARD_TOKEN, or point --data-dir (YARD_DATA_DIR) at the daemon's data directory"
        ),
        _ => anyhow::Error::new(e),
    }
}

pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `/health` is open, so no token is read: a healthcheck works in a
/// container that holds none.
async fn health(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let health = YardClient::new(&args.url, None)?
        .health()
        .await
        .with_context(|| format!("the yard at {} did not answer /health", args.url))?;
    if args.json {
        print_json(&health)?;
    } else {
        println!("{}: {}", args.url, health.status);
        for (service, state) in health.services.iter().flatten() {
            if state != "running" {
                println!("  {service}: {state}");
            }
        }
    }
    Ok(if health.status == "healthy" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn check(name: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let verdict = connect(args)?.check_name(name).await.map_err(explain)?;
    if args.json {
        print_json(&verdict)?;
    } else if verdict.available {
        println!("{} is available", name.trim().to_lowercase());
    } else {
        println!(
            "{name:?} cannot be used: {}",
            verdict.error.as_deref().unwrap_or("unavailable")
        );
    }
    Ok(if verdict.available {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn deploy(name: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = connect(args)?;
    let accepted = client.deploy(name).await.map_err(explain)?;
    let progress = Progress::new(!args.json);
    let outcome = client
        .follow(&accepted.deployment_id, |event| {
            progress.show(event.progress, &event.current_step);
        })
        .await;
    progress.finish();
    let outcome = outcome.map_err(explain)?;
    if args.json {
        print_json(
            &client
                .deployment(&accepted.deployment_id)
                .await
                .map_err(explain)?,
        )?;
    }
    match outcome {
        Outcome::Completed(url) => {
            if !args.json {
                println!("{url}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Failed(message) => {
            eprintln!("error: deploying {} failed: {message}", accepted.name);
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn stacks(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let list = connect(args)?.stacks().await.map_err(explain)?;
    if args.json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.stacks.is_empty() {
        println!("no stacks");
        return Ok(ExitCode::SUCCESS);
    }
    let width = list
        .stacks
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:width$}  {:20}  {:10}  {:>8}  URL",
        "NAME", "STATUS", "HEALTH", "RESTARTS"
    );
    for stack in &list.stacks {
        println!(
            "{:width$}  {:20}  {:10}  {:>8}  {}",
            stack.name,
            stack.status.as_str(),
            stack.health.as_str(),
            stack.restarts,
            stack.url
        );
        if let Some(failure) = &stack.last_failure {
            println!("{:width$}  last failure: {failure}", "");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn restart(name: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let stack = connect(args)?.restart_stack(name).await.map_err(explain)?;
    if args.json {
        print_json(&stack)?;
        return Ok(ExitCode::SUCCESS);
    }
    match stack.health {
        StackHealth::Running => {
            println!("{} is running again: {}", stack.name, stack.url);
            Ok(ExitCode::SUCCESS)
        }
        health => {
            eprintln!(
                "{} is {health}: {}",
                stack.name,
                stack.health_reason.as_deref().unwrap_or("no reason given")
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn update(name: &str, image: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let stack = connect(args)?
        .update_stack(name, image)
        .await
        .map_err(explain)?;
    if args.json {
        print_json(&stack)?;
    } else {
        println!("{} runs {} now: {}", stack.name, stack.image, stack.url);
    }
    Ok(ExitCode::SUCCESS)
}

async fn destroy(name: &str, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let removed = connect(args)?.destroy(name).await.map_err(explain)?;
    if args.json {
        print_json(&removed)?;
    } else {
        println!("removed {}", removed.name);
    }
    Ok(ExitCode::SUCCESS)
}

async fn token_command(action: &TokenAction, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = connect(args)?;
    match action {
        TokenAction::Create {
            name,
            role,
            takes_over,
        } => {
            let role = match role {
                Role::User => TokenRoleView::User,
                Role::Admin => TokenRoleView::Admin,
            };
            let created = client
                .create_token(&CreateTokenRequest {
                    name: name.clone(),
                    role: Some(role),
                    takes_over: takes_over.clone(),
                })
                .await
                .map_err(explain)?;
            if args.json {
                print_json(&created)?;
            } else {
                println!("{}", created.secret);
                eprintln!(
                    "token {:?} made ({}); it is shown only this once: hand it to {} to sign in with",
                    created.token.name, created.token.id, created.token.name
                );
            }
        }
        TokenAction::List => {
            let list = client.tokens().await.map_err(explain)?;
            if args.json {
                print_json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let width = list
                .tokens
                .iter()
                .map(|t| t.name.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!("{:width$}  {:5}  {:24}  ID", "NAME", "ROLE", "CREATED");
            for token in &list.tokens {
                let role = match token.role {
                    TokenRoleView::Admin => "admin",
                    TokenRoleView::User => "user",
                };
                println!(
                    "{:width$}  {role:5}  {:24}  {}",
                    token.name, token.created_at, token.id
                );
            }
        }
        TokenAction::Revoke { key, keep_agents } => {
            let revoked = client
                .revoke_token(key, *keep_agents)
                .await
                .map_err(explain)?;
            if args.json {
                print_json(&revoked)?;
            } else {
                println!("revoked {}", revoked.token.name);
                if !revoked.stopped_agents.is_empty() {
                    eprintln!("stopped its agents: {}", revoked.stopped_agents.join(", "));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn config_command(action: &ConfigAction, args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = connect(args)?;
    match action {
        ConfigAction::List => {
            let list = client.config().await.map_err(explain)?;
            if args.json {
                print_json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let width = list
                .settings
                .iter()
                .map(|s| s.key.len())
                .max()
                .unwrap_or(3)
                .max(3);
            println!("{:width$}  {:5}  VALUE", "KEY", "STATE");
            for setting in &list.settings {
                let state = if setting.set { "set" } else { "unset" };
                let value = match (&setting.value, setting.secret) {
                    (Some(value), false) => value.escape_debug().to_string(),
                    (_, true) => "(secret)".to_owned(),
                    (None, false) => String::new(),
                };
                println!("{:width$}  {state:5}  {value}", setting.key);
            }
        }
        ConfigAction::Set { key, value } => {
            let value = match value {
                Some(value) => value.clone(),
                None => read_value(key)?,
            };
            let set = client.set_config(key, &value).await.map_err(explain)?;
            if args.json {
                print_json(&set)?;
            } else {
                eprintln!(
                    "{} set{}",
                    set.key,
                    if set.secret {
                        " (stored encrypted)"
                    } else {
                        ""
                    }
                );
            }
        }
        ConfigAction::Unset { key } => {
            let unset = client.unset_config(key).await.map_err(explain)?;
            if args.json {
                print_json(&unset)?;
            } else {
                eprintln!("{} unset", unset.key);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `yard forge init`: what the set-up did, secrets by name only.
async fn forge_init(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let report = connect(args)?.forge_init().await.map_err(explain)?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("forge:    {} (Gitea {})", report.forge_url, report.version);
    println!("admin:    {}", report.admin_user);
    println!("bot:      {} (an owner of {})", report.bot_user, report.org);
    println!(
        "webhook:  {} (system hook {})",
        report.webhook_url, report.webhook_id
    );
    if report.generated.is_empty() {
        println!("generated: nothing");
    } else {
        println!(
            "generated: {} (kept encrypted in the yard's settings)",
            report.generated.join(", ")
        );
    }
    if report.stored.is_empty() {
        println!("stored:   nothing new; everything was in place");
    } else {
        println!("stored:   {}", report.stored.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// A setting's value from stdin: all of a pipe, one trailing line break
/// dropped; or one line typed at a terminal, not echoed.
fn read_value(key: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("value for {key} (not shown; Enter ends it): ");
        let typed = read_unechoed(&mut stdin.lock());
        eprintln!();
        return typed;
    }
    let mut value = String::new();
    stdin
        .lock()
        .read_to_string(&mut value)
        .context("cannot read the value from stdin")?;
    if let Some(line) = value.strip_suffix('\n') {
        value.truncate(line.strip_suffix('\r').unwrap_or(line).len());
    }
    Ok(value)
}

/// One line from the terminal with its echo off (raw mode, restored on
/// every way out): Enter ends it, Backspace takes a character back,
/// Ctrl-C or Ctrl-D gives up.
fn read_unechoed(input: &mut impl std::io::Read) -> anyhow::Result<String> {
    struct Raw;
    impl Drop for Raw {
        fn drop(&mut self) {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
    crossterm::terminal::enable_raw_mode().context("cannot turn the terminal's echo off")?;
    let _raw = Raw;
    let mut typed = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if input.read(&mut byte).context("cannot read the value")? == 0 {
            bail!("no value given");
        }
        match byte[0] {
            b'\r' | b'\n' => break,
            0x03 | 0x04 => bail!("no value given"),
            0x7f | 0x08 => {
                // A whole character, however many bytes it took.
                while let Some(last) = typed.pop() {
                    if last & 0xc0 != 0x80 {
                        break;
                    }
                }
            }
            b => typed.push(b),
        }
    }
    String::from_utf8(typed).context("the value is not UTF-8")
}

/// Deployment progress on stderr: a bar on a terminal, one line per step
/// otherwise (logs, CI), nothing with `--json`.
struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    last_step: std::cell::RefCell<String>,
}

impl Progress {
    fn new(visible: bool) -> Self {
        let on_terminal = std::io::stderr().is_terminal();
        let bar = (visible && on_terminal).then(|| {
            let bar = ProgressBar::new(100);
            if let Ok(style) = ProgressStyle::with_template("{bar:30.cyan/blue} {pos:>3}%  {msg}") {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            lines: visible && !on_terminal,
            last_step: std::cell::RefCell::default(),
        }
    }

    fn show(&self, percent: u8, step: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(u64::from(percent));
            bar.set_message(step.to_owned());
        }
        if self.lines && *self.last_step.borrow() != step {
            eprintln!("[{percent:>3}%] {step}");
            step.clone_into(&mut self.last_step.borrow_mut());
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
