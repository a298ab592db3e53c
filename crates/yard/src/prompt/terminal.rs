//! The full-screen terminal `yard prompt` and `yard agents --watch` draw
//! on: raw mode and the alternate screen while it lives, and the person's
//! terminal given back as it was however the command ends: returning,
//! failing, or panicking (a panic hook restores it before the panic
//! message prints, so the message is readable and the shell usable).

use std::io::{IsTerminal, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use crossterm::cursor::Show;
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::backend::CrosstermBackend;
use ratatui::{Frame, Terminal};

/// Whether a [`Screen`] holds the terminal, so a panic restores only a
/// terminal that was taken over.
static TAKEN_OVER: AtomicBool = AtomicBool::new(false);

/// The terminal, taken over until dropped.
#[derive(Debug)]
pub(crate) struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    /// Takes over the terminal for `command` (named in errors).
    pub(crate) fn enter(command: &str) -> anyhow::Result<Self> {
        if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
            bail!("`{command}` draws on a terminal and reads keys from it; run it in one");
        }
        restore_on_panic();
        enable_raw_mode().context("cannot put the terminal in raw mode")?;
        TAKEN_OVER.store(true, Ordering::SeqCst);
        let terminal = match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
            Ok(terminal) => terminal,
            Err(e) => {
                restore();
                return Err(e).context("cannot draw on the terminal");
            }
        };
        // From here on, dropping the screen puts everything back.
        let screen = Self { terminal };
        execute!(std::io::stdout(), EnterAlternateScreen)
            .context("cannot switch the terminal to its alternate screen")?;
        Ok(screen)
    }

    pub(crate) fn draw(&mut self, render: impl FnOnce(&mut Frame)) -> anyhow::Result<()> {
        self.terminal
            .draw(render)
            .context("cannot draw on the terminal")?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor and ends raw mode, if a
/// screen took the terminal over; each step is tried even if another
/// fails.
fn restore() {
    if !TAKEN_OVER.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, Show);
    let _ = disable_raw_mode();
}

/// Chains a hook before the current panic hook that restores the
/// terminal, once per process.
fn restore_on_panic() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
