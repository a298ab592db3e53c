//! A minimal init for when `yard aio` is PID 1 with no `tini` in front.
//!
//! PID 1 inherits every orphan in the container, and an orphan that exits
//! stays a zombie until PID 1 reaps it. The yard also runs `git` and other
//! children of its own whose exit status it waits for, so reaping "any
//! child" inside the yard would steal those statuses. Instead, as PID 1 the
//! binary splits in two, as `tini` does: this small init starts the real
//! `yard aio` as its only direct child, passes it the signals a container
//! runtime sends, reaps every process that lands on it, and exits with the
//! child's status once the child is gone.
//!
//! It runs before any thread exists and blocks the signals it handles so
//! that it can wait for them synchronously (no signal handler, no
//! `unsafe`). A child inherits that mask, so every `yard` process clears
//! its own at start ([`clear_signal_mask`]) before it relies on signals.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Signals passed on to the child: what `docker stop`, `docker kill -s`
/// and a terminal send.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Unblocks every signal on the calling thread; `main` calls it first, so
/// that a mask inherited from the init (or any parent) cannot keep SIGTERM
/// from the yard.
pub fn clear_signal_mask() -> io::Result<()> {
    SigSet::empty().thread_set_mask().map_err(io::Error::from)
}

/// Whether this process is its PID namespace's init.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Runs `program` with `arguments` as the only child of this init (it is
/// not PID 1, so it does not split again), and returns the exit code to
/// leave with: the child's, or 128 + the signal that killed it. Call it
/// from `main` before starting any thread.
pub fn run(program: &Path, arguments: &[OsString]) -> io::Result<i32> {
    let mut handled = SigSet::empty();
    handled.add(Signal::SIGCHLD);
    for signal in FORWARDED {
        handled.add(signal);
    }
    handled.thread_block().map_err(io::Error::from)?;
    let child = Command::new(program).args(arguments).spawn()?;
    let child = Pid::from_raw(i32::try_from(child.id()).map_err(io::Error::other)?);
    loop {
        let signal = handled.wait().map_err(io::Error::from)?;
        if signal != Signal::SIGCHLD {
            // The child may already be gone; the next SIGCHLD says so.
            let _ = kill(child, signal);
            continue;
        }
        if let Some(code) = reap(child) {
            return Ok(code);
        }
    }
}

/// Reaps every exited process; the child's exit code once it is among them.
fn reap(child: Pid) -> Option<i32> {
    let mut child_code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => child_code = Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                child_code = Some(128 + signal as i32);
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return child_code,
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(_) => return child_code,
        }
    }
}
