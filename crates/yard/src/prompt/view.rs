//! What `yard prompt` and `yard agents --watch` draw: a pure function of
//! the model, so a test renders a model on a `TestBackend` and reads the
//! screen without a terminal.

use std::time::{Duration, SystemTime};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, HighlightSpacing, Paragraph, Row, Table, TableState, Wrap};

use super::model::{AgentsTable, Claim, Entry, Focus, Kind, Mode, Model};

/// The text cursor drawn at the end of what is being typed.
const CURSOR: &str = "█";

/// Draws `yard prompt`.
pub(crate) fn draw(frame: &mut Frame, model: &Model) {
    if let Some(table) = model.agents() {
        draw_agents_table(frame, table, "↑/↓ move  q back to the questions");
        return;
    }
    let [main, status, help] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    match model.mode() {
        Mode::Browse => {
            let rows = u16::try_from(model.entries().len()).unwrap_or(u16::MAX);
            let list_height = rows.saturating_add(3).clamp(4, (main.height / 2).max(4));
            let [list, detail] =
                Layout::vertical([Constraint::Length(list_height), Constraint::Min(3)]).areas(main);
            draw_list(frame, list, model);
            draw_detail(frame, detail, model);
        }
        Mode::Once => draw_detail(frame, main, model),
    }
    draw_status(frame, status, model);
    frame.render_widget(Line::from(help_text(model)).dim(), help);
}

/// Draws `yard agents --watch`.
pub(crate) fn draw_agents(frame: &mut Frame, table: &AgentsTable) {
    draw_agents_table(frame, table, "↑/↓ move  q quit");
}

fn draw_list(frame: &mut Frame, area: Rect, model: &Model) {
    let now = model.now();
    let rows = model.entries().iter().map(|entry| {
        let question = &entry.question;
        let marker = match entry.claim {
            Claim::Elsewhere => Cell::from("claimed").yellow(),
            Claim::Mine | Claim::Requested | Claim::Free => Cell::from(""),
        };
        Row::new(vec![
            Cell::from(question.agent_id.clone()),
            Cell::from(question.agent_task.clone().unwrap_or_default()),
            Cell::from(question.kind.clone()),
            Cell::from(
                question
                    .message
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            Cell::from(
                entry
                    .asked_at
                    .map_or_else(|| "?".to_owned(), |t| since(t, now)),
            ),
            Cell::from(time_left(entry, now)),
            marker,
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Fill(1),
            Constraint::Length(10),
            Constraint::Fill(2),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Length(7),
        ],
    )
    .header(Row::new(["AGENT", "TASK", "KIND", "MESSAGE", "AGE", "LEFT", ""]).bold())
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ")
    .highlight_spacing(HighlightSpacing::Always)
    .block(Block::bordered().title(format!(" Questions ({} pending) ", model.entries().len())));
    let mut state = TableState::new().with_selected(model.selected_index());
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_detail(frame: &mut Frame, area: Rect, model: &Model) {
    let Some(entry) = model.selected_entry() else {
        let waiting = match (model.connected(), model.mode()) {
            (false, _) => "Connecting to the yard…",
            (true, Mode::Once) => "Waiting for a question nobody else shows…",
            (true, Mode::Browse) => "No pending questions: they appear here as agents ask them.",
        };
        frame.render_widget(
            Paragraph::new(waiting).block(Block::bordered().title(" yard prompt ")),
            area,
        );
        return;
    };
    let question = &entry.question;
    let mut lines: Vec<Line> = Vec::new();
    if let Some(task) = &question.agent_task {
        lines.push(Line::from(vec!["Task: ".bold(), Span::from(task.clone())]));
        lines.push(Line::default());
    }
    lines.extend(question.message.lines().map(Line::from));
    if let Some(context) = &question.context {
        lines.push(Line::default());
        lines.push(Line::from("Context:".bold()));
        lines.extend(context.lines().map(|line| Line::from(format!("  {line}"))));
    }
    lines.push(Line::default());
    lines.extend(answer_lines(entry, model.focus()));
    if model.focus() == Focus::Reason || !entry.reason.is_empty() {
        let cursor = if model.focus() == Focus::Reason {
            CURSOR
        } else {
            ""
        };
        lines.push(Line::default());
        lines.push(Line::from(vec![
            "Reason: ".bold(),
            Span::from(format!("{}{cursor}", entry.reason)),
        ]));
    }
    if entry.claim == Claim::Elsewhere {
        lines.push(Line::default());
        lines.push(
            Line::from("Claimed by another client: it can be answered here once it lets go.")
                .yellow(),
        );
    }
    let now = model.now();
    let asked = entry
        .asked_at
        .map_or_else(|| "?".to_owned(), |t| since(t, now));
    let others = model.entries().len().saturating_sub(1);
    let more = match model.mode() {
        Mode::Once if others > 0 => format!(" ({others} more waiting) "),
        Mode::Once | Mode::Browse => " ".to_owned(),
    };
    let title = format!(
        " {} from agent {} · asked {asked} ago · {}{more}",
        question.kind,
        question.agent_id,
        time_left(entry, now)
    );
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title)),
        area,
    );
}

/// The part of the detail that takes the answer.
fn answer_lines(entry: &Entry, focus: Focus) -> Vec<Line<'static>> {
    match entry.kind() {
        Kind::Confirm => vec![Line::from(vec![
            "y".bold(),
            " yes   ".into(),
            "n".bold(),
            " no".into(),
        ])],
        Kind::Permission => vec![Line::from(vec![
            "a".bold(),
            " allow   ".into(),
            "d".bold(),
            " deny".into(),
        ])],
        Kind::Select => entry
            .question
            .options
            .iter()
            .enumerate()
            .map(|(index, option)| {
                if index == entry.option {
                    Line::from(format!("> {option}")).reversed()
                } else {
                    Line::from(format!("  {option}"))
                }
            })
            .collect(),
        Kind::Text => {
            let cursor = if focus == Focus::Answer { CURSOR } else { "" };
            vec![Line::from(vec![
                "Answer: ".bold(),
                Span::from(format!("{}{cursor}", entry.text)),
            ])]
        }
        Kind::Unknown => vec![
            Line::from(format!(
                "This yard asks {:?} questions, which this `yard` cannot answer: update it.",
                entry.question.kind
            ))
            .red(),
        ],
    }
}

fn draw_status(frame: &mut Frame, area: Rect, model: &Model) {
    if let Some(status) = model.status() {
        let line = Line::from(status.text.clone());
        let line = if status.is_error {
            line.red()
        } else {
            line.green()
        };
        frame.render_widget(line, area);
    }
}

/// The keys that do something now.
fn help_text(model: &Model) -> String {
    let Some(entry) = model.selected_entry() else {
        return "ctrl-a agents  q quit".to_owned();
    };
    if model.focus() == Focus::Reason {
        return "type the reason  enter done".to_owned();
    }
    let answer = match entry.kind() {
        Kind::Confirm => "y yes  n no  r reason  ",
        Kind::Permission => "a allow  d deny  r reason  ",
        Kind::Select => "↑/↓ option  enter send  r reason  ",
        Kind::Text => "type the answer  enter send  tab reason  ",
        Kind::Unknown => "",
    };
    let switch = match (model.mode(), entry.kind()) {
        (Mode::Once, _) => "",
        (Mode::Browse, Kind::Select) => "pgup/pgdn question  ",
        (Mode::Browse, _) => "↑/↓ question  ",
    };
    let quit = match entry.kind() {
        Kind::Text => "esc quit",
        _ => "q quit",
    };
    format!("{answer}{switch}ctrl-a agents  {quit}")
}

fn draw_agents_table(frame: &mut Frame, table: &AgentsTable, help: &str) {
    let [main, status, keys] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let now = table.refreshed_at();
    let rows = table.agents().iter().map(|agent| {
        let age = match (humantime::parse_rfc3339(&agent.created_at), now) {
            (Ok(created), Some(now)) => since(created, now),
            _ => "?".to_owned(),
        };
        Row::new(vec![
            Cell::from(agent.id.clone()),
            Cell::from(agent.status.as_str()),
            Cell::from(agent.task.lines().next().unwrap_or_default().to_owned()),
            Cell::from(agent.branch.clone()),
            Cell::from(agent.owner.clone().unwrap_or_else(|| "-".to_owned())),
            Cell::from(age),
        ])
    });
    let widget = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(8),
            Constraint::Fill(1),
            Constraint::Length(16),
            Constraint::Length(12),
            Constraint::Length(5),
        ],
    )
    .header(Row::new(["ID", "STATUS", "TASK", "BRANCH", "OWNER", "AGE"]).bold())
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ")
    .highlight_spacing(HighlightSpacing::Always)
    .block(Block::bordered().title(format!(" Agents ({}) ", table.agents().len())));
    let selected = (!table.agents().is_empty()).then_some(table.selected());
    let mut state = TableState::new().with_selected(selected);
    frame.render_stateful_widget(widget, main, &mut state);
    let line = match (table.error(), now) {
        (Some(error), _) => Line::from(format!("cannot refresh: {error}")).red(),
        (None, None) => Line::from("loading…"),
        (None, Some(_)) if table.agents().is_empty() => {
            Line::from("no agents yet; refreshed every second").dim()
        }
        (None, Some(_)) => Line::from("refreshed every second").dim(),
    };
    frame.render_widget(line, status);
    frame.render_widget(Line::from(help.to_owned()).dim(), keys);
}

/// How long until a question's deadline: "9m left", or "due".
fn time_left(entry: &Entry, now: SystemTime) -> String {
    match entry.deadline.map(|deadline| deadline.duration_since(now)) {
        Some(Ok(left)) => format!("{} left", short(left)),
        Some(Err(_)) => "due".to_owned(),
        None => "?".to_owned(),
    }
}

/// "42s", "7m", "3h", "2d" from `then` to `now`.
fn since(then: SystemTime, now: SystemTime) -> String {
    short(now.duration_since(then).unwrap_or(Duration::ZERO))
}

fn short(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use yard_api::{AgentStatus, AgentView, QuestionServerMessage};

    use super::*;
    use crate::prompt::model::tests::{clock, model_with, question};

    /// The screen as text, one line per row.
    fn render(width: u16, height: u16, draw: impl FnOnce(&mut Frame)) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(draw).unwrap();
        let buffer = terminal.backend().buffer();
        buffer
            .content()
            .chunks(usize::from(buffer.area.width))
            .map(|row| row.iter().map(|cell| cell.symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn screen(model: &Model) -> String {
        render(100, 30, |frame| draw(frame, model))
    }

    #[test]
    fn the_list_shows_every_question_and_which_is_claimed_elsewhere() {
        let model = model_with(
            Mode::Browse,
            vec![
                question("q1", "agent-one", "confirm", "May I push?\nsecond line"),
                question("q2", "agent-two", "select", "Which colour?"),
                question("q3", "agent-3", "text", "What next?"),
            ],
            &["q2"],
        );
        let shown = screen(&model);
        for expected in [
            "agent-one",
            "agent-two",
            "TASK",
            "task of agent-one",
            "May I push?",
            "Which colour?",
            "What next?",
            "claimed",
            "1m",
            "9m left",
            "3 pending",
        ] {
            assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
        }
    }

    #[test]
    fn a_confirm_shows_its_message_context_and_keys() {
        let model = model_with(
            Mode::Browse,
            vec![question("q1", "agent-one", "confirm", "May I push?")],
            &[],
        );
        let shown = screen(&model);
        for expected in [
            "confirm from agent agent-one",
            "Task: task of agent-one",
            "May I push?",
            "Bash: rm -rf build",
            "y yes",
            "n no",
        ] {
            assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
        }
        assert!(!shown.contains("Claimed by another client"), "{shown}");
    }

    #[test]
    fn a_select_shows_its_options_with_the_highlighted_one_marked() {
        let mut model = model_with(
            Mode::Once,
            vec![question("q1", "agent-two", "select", "Which colour?")],
            &[],
        );
        model.press(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Down,
        ));
        let shown = screen(&model);
        for expected in ["Which colour?", "  Red", "> Blue", "  Green", "agent-two"] {
            assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
        }
    }

    #[test]
    fn a_text_question_shows_what_is_typed_and_a_claimed_one_says_so() {
        let mut model = model_with(
            Mode::Browse,
            vec![question("q3", "agent-3", "text", "What next?")],
            &[],
        );
        for c in "ship it".chars() {
            model.press(crossterm::event::KeyEvent::from(
                crossterm::event::KeyCode::Char(c),
            ));
        }
        model.receive(QuestionServerMessage::Claimed {
            id: "q3".to_owned(),
            mine: false,
        });
        let shown = screen(&model);
        for expected in ["What next?", "Answer: ship it", "Claimed by another client"] {
            assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
        }
    }

    #[test]
    fn nothing_pending_says_so() {
        let shown = screen(&model_with(Mode::Once, Vec::new(), &[]));
        assert!(shown.contains("Waiting for a question"), "{shown}");
    }

    #[test]
    fn the_agents_table_shows_each_agent() {
        let mut table = AgentsTable::default();
        let agent = AgentView {
            id: "a1b2c3d4".to_owned(),
            status: AgentStatus::Running,
            branch: "yard/a1b2c3d4".to_owned(),
            repo: "/repo".to_owned(),
            base_ref: "main".to_owned(),
            base_commit: "0".repeat(40),
            task: "fix the build\nand more".to_owned(),
            image: "img".to_owned(),
            owner: Some("alice".to_owned()),
            parent: None,
            exit_code: None,
            message: None,
            head_commit: None,
            created_at: "2029-12-31T23:58:00Z".to_owned(),
            updated_at: "2029-12-31T23:58:00Z".to_owned(),
        };
        table.refreshed(Ok(vec![agent]), clock());
        let shown = render(100, 10, |frame| draw_agents(frame, &table));
        for expected in [
            "a1b2c3d4",
            "running",
            "fix the build",
            "yard/a1b2c3d4",
            "alice",
            "2m",
        ] {
            assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
        }
        table.refreshed(Err("the yard is down".to_owned()), clock());
        let shown = render(100, 10, |frame| draw_agents(frame, &table));
        assert!(shown.contains("a1b2c3d4") && shown.contains("cannot refresh: the yard is down"));
    }
}
