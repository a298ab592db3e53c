//! `yard prompt` and `yard agents --watch`: full-screen terminal UIs for
//! the person who answers agents' questions and watches agents work.
//!
//! `model` holds the state and its rules, `view` draws it, `channel`
//! speaks to the yard and `terminal` owns the screen; this module only
//! runs the loop that feeds key presses, the yard's messages and the clock
//! into the model, and sends what the model says to send.

mod channel;
mod model;
mod terminal;
mod view;

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use yard_api::AgentView;
use yard_client::YardClient;

use crate::cli::{ClientArgs, PromptArgs};
use crate::commands::{connect, explain};
use channel::QuestionChannel;
use model::{AgentsTable, Ending, Mode, Model, TableKey};
use terminal::Screen;

/// How often an agents table asks the yard for the agents.
const REFRESH_AGENTS_EVERY: Duration = Duration::from_secs(1);

/// `yard prompt`: answers questions until the person quits, or (`--once`)
/// the one question it shows is settled.
pub(crate) async fn run(args: &PromptArgs) -> anyhow::Result<ExitCode> {
    let mode = if args.once { Mode::Once } else { Mode::Browse };
    let client = connect(&args.client)?;
    let mut channel = QuestionChannel::open(&args.client).await?;
    let mut screen = Screen::enter("yard prompt")?;
    let ended = answer_questions(&mut screen, &mut channel, &client, mode).await;
    // The terminal is the person's again before anything is printed.
    drop(screen);
    channel.close().await;
    match ended? {
        Ending::Quit => {}
        Ending::Answered {
            question,
            agent,
            answer,
        } => println!("answered agent {agent}'s question {question}: {answer}"),
        Ending::SettledElsewhere { question, how } => println!("question {question} was {how}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn answer_questions(
    screen: &mut Screen,
    channel: &mut QuestionChannel,
    client: &YardClient,
    mode: Mode,
) -> anyhow::Result<Ending> {
    let mut model = Model::new(mode, SystemTime::now());
    let mut keys = EventStream::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut agents_feed: Option<AgentsFeed> = None;
    loop {
        for message in model.take_outbox() {
            channel.send(&message).await?;
        }
        if let Some(ending) = model.ending() {
            return Ok(ending.clone());
        }
        match (model.agents().is_some(), agents_feed.is_some()) {
            (true, false) => agents_feed = Some(AgentsFeed::start(client.clone())),
            (false, true) => agents_feed = None,
            _ => {}
        }
        screen.draw(|frame| view::draw(frame, &model))?;
        tokio::select! {
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) => model.press(key),
                // A resize or a focus change: drawn again above.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("cannot read keys from the terminal"),
                None => bail!("the terminal closed"),
            },
            message = channel.next() => model.receive(message?),
            _ = ticks.tick() => model.tick(SystemTime::now()),
            Some(outcome) = next_refresh(agents_feed.as_mut()) => {
                if let Some(table) = model.agents_mut() {
                    table.refreshed(outcome, SystemTime::now());
                }
            }
        }
    }
}

/// `yard agents --watch`: the agents table, refreshed every second, until
/// the person quits.
pub(crate) async fn watch_agents(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let client = connect(args)?;
    // A yard that cannot be asked is said plainly, before the screen turns.
    let first = client.agents().await.map_err(explain)?;
    let mut table = AgentsTable::default();
    table.refreshed(Ok(first.agents), SystemTime::now());
    let mut screen = Screen::enter("yard agents --watch")?;
    let mut feed = AgentsFeed::start(client);
    let mut keys = EventStream::new();
    loop {
        screen.draw(|frame| view::draw_agents(frame, &table))?;
        tokio::select! {
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) => {
                    if table.press(key) == TableKey::Leave {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("cannot read keys from the terminal"),
                None => return Ok(ExitCode::SUCCESS),
            },
            Some(outcome) = feed.refreshes.recv() => table.refreshed(outcome, SystemTime::now()),
        }
    }
}

/// The agents, fetched every second in the background for as long as
/// this lives, so a slow yard never holds up the keys.
#[derive(Debug)]
struct AgentsFeed {
    refreshes: mpsc::Receiver<Result<Vec<AgentView>, String>>,
    task: JoinHandle<()>,
}

impl AgentsFeed {
    fn start(client: YardClient) -> Self {
        let (sender, refreshes) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            loop {
                let outcome = client
                    .agents()
                    .await
                    .map(|list| list.agents)
                    .map_err(|e| e.to_string());
                if sender.send(outcome).await.is_err() {
                    return;
                }
                tokio::time::sleep(REFRESH_AGENTS_EVERY).await;
            }
        });
        Self { refreshes, task }
    }
}

impl Drop for AgentsFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The next refresh of `feed`; never, without one.
async fn next_refresh(feed: Option<&mut AgentsFeed>) -> Option<Result<Vec<AgentView>, String>> {
    match feed {
        Some(feed) => feed.refreshes.recv().await,
        None => std::future::pending().await,
    }
}
