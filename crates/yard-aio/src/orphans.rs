//! Processes that leave their service's process group.
//!
//! Stopping a service signals its process group, but a program may start
//! helpers in a session of their own (Chromium's crash handler does), and
//! those outlive the service and are reparented away from the supervisor.
//! The supervisor therefore makes itself a child subreaper: such processes
//! are reparented to it instead of to init. It tells them apart from its
//! own children (the services, and whatever the yard in this process runs,
//! such as `git`) by their session: everything this process starts stays in
//! its session, so a child in another session was adopted. Adopted
//! processes that exit are reaped periodically; at shutdown the live ones
//! are killed too, so nothing of the container's services is left behind.

use std::io;

use nix::sys::prctl::set_child_subreaper;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{Pid, getpid, getsid};
use tracing::debug;

/// Makes this process the reaper of its descendants' orphans.
pub(crate) fn adopt() -> io::Result<()> {
    set_child_subreaper(true).map_err(io::Error::from)
}

/// Reaps adopted processes that have exited; with `kill_live`, kills the
/// live ones first. Returns how many it reaped.
pub(crate) fn sweep(kill_live: bool) -> usize {
    let me = getpid();
    let Ok(my_session) = getsid(None) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        let Some(stat) = Stat::read(pid) else {
            continue;
        };
        if stat.ppid != me.as_raw() || stat.session == my_session.as_raw() {
            continue;
        }
        let pid = Pid::from_raw(pid);
        if stat.state != 'Z' {
            if !kill_live {
                continue;
            }
            let _ = kill(pid, Signal::SIGKILL);
        }
        // Only this pid, which nothing else in this process waits for.
        if waitpid(pid, None).is_ok() {
            debug!(pid = pid.as_raw(), "reaped a process that left its service");
            reaped += 1;
        }
    }
    reaped
}

/// The fields of `/proc/PID/stat` the sweep needs.
struct Stat {
    state: char,
    ppid: i32,
    session: i32,
}

impl Stat {
    fn read(pid: i32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses; the fields
        // start after the last `)`.
        let fields: Vec<&str> = text.get(text.rfind(')')? + 2..)?.split(' ').collect();
        Some(Self {
            state: fields.first()?.chars().next()?,
            ppid: fields.get(1)?.parse().ok()?,
            session: fields.get(3)?.parse().ok()?,
        })
    }
}
