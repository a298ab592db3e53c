//! Running the services: start in order, restart with backoff, stop in
//! reverse order.
//!
//! Each service is driven by one task. It waits until everything in its
//! `after` list is ready, then runs the service in a process group of its
//! own, so that a signal reaches everything the service started, not just
//! its first process. When the service exits, what is left of its group is
//! killed and the service is started again after a backoff that doubles
//! with each fast failure; after `give_up_after` fast failures in a row the
//! supervisor gives up on it rather than spin. Shutdown walks the services
//! in reverse start order: SIGTERM to the group, a grace period, then
//! SIGKILL, so that nothing a service started outlives the container's
//! intent to stop.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, Uid, User, geteuid};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::{AioConfig, ReadyCheck, RestartPolicy, ServiceConfig, UserSpec};
use crate::log::RotatingLog;
use crate::orphans;

/// How long a service waits for the services in its `after` list to be
/// ready before it is marked failed.
const DEPENDENCY_WAIT: Duration = Duration::from_secs(30);
/// How often exited processes that left their services are reaped.
const ORPHAN_SWEEP: Duration = Duration::from_secs(5);
/// How often readiness is checked.
const READY_POLL: Duration = Duration::from_millis(50);
/// How long a TCP ready check waits for a connection.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// How long, after a service's first process is gone and its group has
/// been sent SIGKILL, to wait for the rest of the group and the log pipes.
const LEFTOVER_WAIT: Duration = Duration::from_millis(500);

/// Why the supervisor could not start or watch its services.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot create the log directory {}: {source}", path.display())]
    LogDir { path: PathBuf, source: io::Error },
    #[error("cannot open the log of service `{service}`: {source}")]
    Log { service: String, source: io::Error },
}

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// Waiting for its dependencies, or being spawned.
    Starting,
    Running,
    /// Exited; waiting before it is started again.
    BackingOff,
    /// Failed fast too many times in a row; not restarted.
    GaveUp,
    /// Stopped by shutdown, or exited with `restart = "never"`.
    Stopped,
    /// Could not be started at all (a dependency never became ready, or
    /// its user does not exist); see the status's detail.
    Failed,
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::BackingOff => "backing_off",
            Self::GaveUp => "gave_up",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        })
    }
}

/// How a service's last run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastExit {
    Code(i32),
    Signal(i32),
}

impl LastExit {
    fn from_status(status: ExitStatus) -> Option<Self> {
        status
            .code()
            .map(Self::Code)
            .or_else(|| status.signal().map(Self::Signal))
    }
}

impl fmt::Display for LastExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(code) => write!(f, "exit code {code}"),
            Self::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// One service as [`Supervisor::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: String,
    pub state: ServiceState,
    /// The service's first process (and process group), while it runs.
    pub pid: Option<u32>,
    /// How long the current run has lasted.
    pub uptime: Option<Duration>,
    /// How many times it has been started again after exiting.
    pub restarts: u32,
    pub last_exit: Option<LastExit>,
    /// Whether its ready check has passed in the current run.
    pub ready: bool,
    /// Why it failed, gave up or could not be spawned, if it did.
    pub detail: Option<String>,
}

/// The services' running state, shared by their tasks and the supervisor.
#[derive(Debug, Default)]
struct Shared {
    records: Mutex<BTreeMap<String, Record>>,
}

#[derive(Debug)]
struct Record {
    state: ServiceState,
    pid: Option<u32>,
    started: Option<Instant>,
    restarts: u32,
    last_exit: Option<LastExit>,
    ready: bool,
    detail: Option<String>,
}

impl Shared {
    fn records(&self) -> MutexGuard<'_, BTreeMap<String, Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, service: &str, change: impl FnOnce(&mut Record)) {
        if let Some(record) = self.records().get_mut(service) {
            change(record);
        }
    }

    /// Marks a service as no longer running, in `state`.
    fn finish(&self, service: &str, state: ServiceState, detail: Option<String>) {
        self.update(service, |record| {
            record.state = state;
            record.pid = None;
            record.started = None;
            record.ready = false;
            if detail.is_some() {
                record.detail = detail;
            }
        });
    }
}

/// What a dependency's record says about starting the services after it.
enum DependencyState {
    Ready,
    NotYet,
    /// It will not become ready: it gave up, failed or stopped.
    Never(ServiceState),
}

/// Reads the services' state; see [`Supervisor::status_handle`].
#[derive(Debug, Clone)]
pub struct StatusHandle {
    /// The services in start order.
    order: Arc<[String]>,
    shared: Arc<Shared>,
}

impl StatusHandle {
    /// Every service, in start order.
    pub fn status(&self) -> Vec<ServiceStatus> {
        let records = self.shared.records();
        self.order
            .iter()
            .filter_map(|name| {
                let record = records.get(name)?;
                Some(ServiceStatus {
                    name: name.clone(),
                    state: record.state,
                    pid: record.pid,
                    uptime: record.started.map(|started| started.elapsed()),
                    restarts: record.restarts,
                    last_exit: record.last_exit,
                    ready: record.ready,
                    detail: record.detail.clone(),
                })
            })
            .collect()
    }
}

/// Runs the configured services until [`Supervisor::shutdown`].
#[derive(Debug)]
pub struct Supervisor {
    /// The services in start order.
    services: Vec<ServiceHandle>,
    shared: Arc<Shared>,
    /// Reaps processes that left their service's group and have exited.
    orphan_reaper: JoinHandle<()>,
}

#[derive(Debug)]
struct ServiceHandle {
    name: String,
    stop_timeout: Duration,
    /// Set to the grace period to ask the service's task to stop it.
    stop: watch::Sender<Option<Duration>>,
    task: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Opens the services' logs under `log_dir` and starts a task for each
    /// service, in start order. Must be called within a Tokio runtime.
    /// Dropping the supervisor without [`shutdown`](Self::shutdown) kills
    /// the services' process groups without a grace period.
    pub fn start(config: AioConfig, log_dir: &Path) -> Result<Self, SupervisorError> {
        std::fs::create_dir_all(log_dir).map_err(|source| SupervisorError::LogDir {
            path: log_dir.to_owned(),
            source,
        })?;
        let order = config.start_order();
        let shared = Arc::new(Shared::default());
        shared.records().extend(order.iter().map(|name| {
            let record = Record {
                state: ServiceState::Starting,
                pid: None,
                started: None,
                restarts: 0,
                last_exit: None,
                ready: false,
                detail: None,
            };
            (name.clone(), record)
        }));
        let mut services = Vec::with_capacity(order.len());
        for name in order {
            let Some(service) = config.services().get(&name).cloned() else {
                continue;
            };
            let log = RotatingLog::open(log_dir, &name, config.logs()).map_err(|source| {
                SupervisorError::Log {
                    service: name.clone(),
                    source,
                }
            })?;
            let (stop, stop_requests) = watch::channel(None);
            let stop_timeout = service.stop_timeout;
            let task = ServiceTask {
                name: name.clone(),
                service,
                log: Arc::new(Mutex::new(log)),
                shared: Arc::clone(&shared),
                stop_requests,
            };
            services.push(ServiceHandle {
                name,
                stop_timeout,
                stop,
                task: Some(tokio::spawn(task.supervise())),
            });
        }
        if let Err(error) = orphans::adopt() {
            warn!(%error, "cannot become the reaper of the services' orphans; a helper that leaves its service's process group may outlive it");
        }
        let orphan_reaper = tokio::spawn(async {
            let mut tick = tokio::time::interval(ORPHAN_SWEEP);
            loop {
                tick.tick().await;
                let _ = tokio::task::spawn_blocking(|| orphans::sweep(false)).await;
            }
        });
        Ok(Self {
            services,
            shared,
            orphan_reaper,
        })
    }

    /// Every service, in start order.
    pub fn status(&self) -> Vec<ServiceStatus> {
        self.status_handle().status()
    }

    /// A handle that reads the services' state without the supervisor,
    /// for the yard's API while the binary keeps the supervisor to stop it.
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle {
            order: self
                .services
                .iter()
                .map(|handle| handle.name.clone())
                .collect(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops every service in reverse start order: SIGTERM to its process
    /// group, up to its `stop_timeout` (or what is left of `within`, if
    /// less) to exit, then SIGKILL. Returns once all are gone.
    pub async fn shutdown(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        for handle in self.services.iter_mut().rev() {
            let left = deadline.saturating_duration_since(Instant::now());
            let grace = handle.stop_timeout.min(left);
            debug!(service = %handle.name, ?grace, "stopping");
            handle.stop.send_replace(Some(grace));
            if let Some(task) = handle.task.take()
                && let Err(error) = task.await
            {
                warn!(service = %handle.name, %error, "service task ended abnormally");
            }
        }
        self.orphan_reaper.abort();
        let killed = tokio::task::spawn_blocking(|| orphans::sweep(true))
            .await
            .unwrap_or(0);
        if killed > 0 {
            info!(
                count = killed,
                "killed processes that had left their services"
            );
        }
        info!(services = self.services.len(), "all services stopped");
    }
}

/// Whom a service runs as, resolved from its `user`.
#[derive(Debug)]
struct Identity {
    uid: u32,
    gid: u32,
    /// From the password database, when the user has an entry there.
    account: Option<(String, PathBuf)>,
}

impl Identity {
    /// The identity to switch to, or `None` to run as the supervisor's own
    /// user: with no `user`, or when not root, which cannot switch.
    fn resolve(service: &str, user: Option<&UserSpec>) -> Result<Option<Self>, String> {
        let Some(user) = user else { return Ok(None) };
        if !geteuid().is_root() {
            warn!(
                service,
                ?user,
                "not running as root: the service runs as the supervisor's user"
            );
            return Ok(None);
        }
        let entry = match user {
            UserSpec::Name(name) => match User::from_name(name) {
                Ok(Some(entry)) => entry,
                Ok(None) => return Err(format!("no user named `{name}`")),
                Err(error) => return Err(format!("cannot look up user `{name}`: {error}")),
            },
            UserSpec::Uid(uid) => match User::from_uid(Uid::from_raw(*uid)) {
                Ok(Some(entry)) => entry,
                Ok(None) => {
                    return Ok(Some(Self {
                        uid: *uid,
                        gid: *uid,
                        account: None,
                    }));
                }
                Err(error) => return Err(format!("cannot look up uid {uid}: {error}")),
            },
        };
        Ok(Some(Self {
            uid: entry.uid.as_raw(),
            gid: entry.gid.as_raw(),
            account: Some((entry.name, entry.dir)),
        }))
    }
}

/// The task that runs one service for the supervisor's life.
struct ServiceTask {
    name: String,
    service: ServiceConfig,
    log: Arc<Mutex<RotatingLog>>,
    shared: Arc<Shared>,
    stop_requests: watch::Receiver<Option<Duration>>,
}

/// How one run of a service ended.
enum RunEnd {
    /// It exited (or could not be spawned) on its own.
    Exited {
        last_exit: Option<LastExit>,
        detail: Option<String>,
    },
    /// Shutdown stopped it.
    Stopped,
}

impl ServiceTask {
    async fn supervise(mut self) {
        let identity = match Identity::resolve(&self.name, self.service.user.as_ref()) {
            Ok(identity) => identity,
            Err(reason) => {
                warn!(service = %self.name, %reason, "cannot start");
                self.shared
                    .finish(&self.name, ServiceState::Failed, Some(reason));
                return;
            }
        };
        tokio::select! {
            _ = stop_requested(&mut self.stop_requests) => {
                self.shared.finish(&self.name, ServiceState::Stopped, None);
                return;
            }
            waited = wait_for_dependencies(&self.shared, &self.service.after) => {
                if let Err(reason) = waited {
                    warn!(service = %self.name, %reason, "cannot start");
                    self.shared.finish(&self.name, ServiceState::Failed, Some(reason));
                    return;
                }
            }
        }
        let initial = self.service.backoff_initial.min(self.service.backoff_max);
        let mut backoff = initial;
        let mut fast_failures = 0;
        loop {
            let run_started = Instant::now();
            let (last_exit, detail) = match self.run_once(identity.as_ref()).await {
                RunEnd::Stopped => return,
                RunEnd::Exited { last_exit, detail } => (last_exit, detail),
            };
            let ran = run_started.elapsed();
            self.shared
                .update(&self.name, |record| record.last_exit = last_exit);
            if self.service.restart == RestartPolicy::Never {
                info!(service = %self.name, ?last_exit, "exited; not restarted");
                self.shared
                    .finish(&self.name, ServiceState::Stopped, detail);
                return;
            }
            if ran >= self.service.fast_failure {
                fast_failures = 0;
                backoff = initial;
            } else {
                fast_failures += 1;
            }
            if fast_failures >= self.service.give_up_after {
                let reason = format!(
                    "failed {fast_failures} times in a row, each within {:?}",
                    self.service.fast_failure
                );
                warn!(service = %self.name, ?last_exit, %reason, "giving up");
                self.shared.finish(
                    &self.name,
                    ServiceState::GaveUp,
                    Some(detail.unwrap_or(reason)),
                );
                return;
            }
            let wait = backoff;
            backoff = backoff.saturating_mul(2).min(self.service.backoff_max);
            info!(service = %self.name, ?last_exit, ?ran, ?wait, fast_failures, "exited; restarting after backoff");
            self.shared
                .finish(&self.name, ServiceState::BackingOff, detail);
            tokio::select! {
                _ = stop_requested(&mut self.stop_requests) => {
                    self.shared.finish(&self.name, ServiceState::Stopped, None);
                    return;
                }
                () = tokio::time::sleep(wait) => {}
            }
            self.shared
                .update(&self.name, |record| record.restarts += 1);
        }
    }

    /// Spawns the service and watches it until it exits or is stopped.
    async fn run_once(&mut self, identity: Option<&Identity>) -> RunEnd {
        self.shared
            .update(&self.name, |record| record.state = ServiceState::Starting);
        let mut child = match self.spawn(identity) {
            Ok(child) => child,
            Err(error) => {
                let detail = format!("cannot run `{}`: {error}", self.service.command.join(" "));
                warn!(service = %self.name, %error, "cannot spawn");
                return RunEnd::Exited {
                    last_exit: None,
                    detail: Some(detail),
                };
            }
        };
        let Some(pid) = child.id() else {
            // Already reaped: it cannot have run.
            return RunEnd::Exited {
                last_exit: None,
                detail: Some("exited before it could be watched".to_owned()),
            };
        };
        let mut pumps = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            pumps.push(tokio::spawn(pump(
                stdout,
                Arc::clone(&self.log),
                self.name.clone(),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            pumps.push(tokio::spawn(pump(
                stderr,
                Arc::clone(&self.log),
                self.name.clone(),
            )));
        }
        let mut ready = self.service.ready.is_none();
        self.shared.update(&self.name, |record| {
            record.state = ServiceState::Running;
            record.pid = Some(pid);
            record.started = Some(Instant::now());
            record.ready = ready;
        });
        info!(service = %self.name, pid, "started");
        let readiness = until_ready(self.service.ready.as_ref());
        tokio::pin!(readiness);
        let end = loop {
            tokio::select! {
                status = child.wait() => {
                    break RunEnd::Exited {
                        last_exit: status.ok().and_then(LastExit::from_status),
                        detail: None,
                    };
                }
                grace = stop_requested(&mut self.stop_requests) => {
                    let status = stop_group(&mut child, pid, grace, &self.name).await;
                    self.shared.update(&self.name, |record| {
                        record.last_exit = status.and_then(LastExit::from_status);
                    });
                    break RunEnd::Stopped;
                }
                () = &mut readiness, if !ready => {
                    ready = true;
                    info!(service = %self.name, pid, "ready");
                    self.shared.update(&self.name, |record| record.ready = true);
                }
            }
        };
        // Whatever the service left behind in its group goes with it.
        signal_group(pid, Signal::SIGKILL, &self.name);
        for pump in pumps {
            if tokio::time::timeout(LEFTOVER_WAIT, pump).await.is_err() {
                debug!(service = %self.name, "log pipe still open after the service exited");
            }
        }
        if matches!(end, RunEnd::Stopped) {
            info!(service = %self.name, "stopped");
            self.shared.finish(&self.name, ServiceState::Stopped, None);
        }
        end
    }

    /// Starts the service's command in a new process group.
    fn spawn(&self, identity: Option<&Identity>) -> io::Result<Child> {
        let (program, arguments) = self
            .service
            .command
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut command = Command::new(program);
        command
            .args(arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(identity) = identity {
            command.uid(identity.uid).gid(identity.gid);
            if let Some((name, home)) = &identity.account {
                command.env("USER", name).env("HOME", home);
            }
        }
        command.envs(&self.service.env);
        command.spawn()
    }
}

/// Waits until shutdown asks for the service to stop, and returns its
/// grace period. A supervisor dropped without shutdown means no grace.
async fn stop_requested(requests: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match requests.wait_for(Option::is_some).await {
        Ok(grace) => (*grace).unwrap_or_default(),
        Err(_) => Duration::ZERO,
    }
}

/// Waits until each of `after` is ready, for at most [`DEPENDENCY_WAIT`].
async fn wait_for_dependencies(shared: &Shared, after: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + DEPENDENCY_WAIT;
    loop {
        let mut waiting_for = None;
        for dependency in after {
            let state = {
                let records = shared.records();
                match records.get(dependency) {
                    Some(record) if record.ready => DependencyState::Ready,
                    Some(record) => match record.state {
                        ServiceState::GaveUp | ServiceState::Failed | ServiceState::Stopped => {
                            DependencyState::Never(record.state)
                        }
                        _ => DependencyState::NotYet,
                    },
                    None => DependencyState::Never(ServiceState::Failed),
                }
            };
            match state {
                DependencyState::Ready => {}
                DependencyState::NotYet => waiting_for = Some(dependency),
                DependencyState::Never(state) => {
                    return Err(format!(
                        "dependency `{dependency}` will not be ready: it is {state}"
                    ));
                }
            }
        }
        let Some(dependency) = waiting_for else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "dependency `{dependency}` was not ready within {DEPENDENCY_WAIT:?}"
            ));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Resolves once `check` passes; never, if there is no check.
async fn until_ready(check: Option<&ReadyCheck>) {
    let Some(check) = check else {
        return std::future::pending().await;
    };
    loop {
        let ready = match check {
            ReadyCheck::Tcp(address) => matches!(
                tokio::time::timeout(
                    TCP_CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect(address.as_str())
                )
                .await,
                Ok(Ok(_))
            ),
            ReadyCheck::X11Display(display) => {
                ReadyCheck::x11_socket(display).is_some_and(|socket| socket.exists())
            }
            ReadyCheck::File(path) => path.exists(),
        };
        if ready {
            return;
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Stops a service's whole process group: SIGTERM, up to `grace` for every
/// process in it to exit, then SIGKILL. Returns the first process's status.
async fn stop_group(
    child: &mut Child,
    pgid: u32,
    grace: Duration,
    service: &str,
) -> Option<ExitStatus> {
    signal_group(pgid, Signal::SIGTERM, service);
    let exited = tokio::time::timeout(grace, async {
        let status = child.wait().await;
        group_gone(pgid).await;
        status
    })
    .await;
    let status = match exited {
        Ok(status) => status,
        Err(_) => {
            warn!(
                service,
                pgid,
                ?grace,
                "did not stop in time; killing its process group"
            );
            signal_group(pgid, Signal::SIGKILL, service);
            let status = child.wait().await;
            if tokio::time::timeout(LEFTOVER_WAIT, group_gone(pgid))
                .await
                .is_err()
            {
                warn!(service, pgid, "processes of its group remain after SIGKILL");
            }
            status
        }
    };
    status
        .inspect_err(|error| warn!(service, %error, "cannot wait for the service to exit"))
        .ok()
}

/// Resolves once no live process is left in the group `pgid`.
async fn group_gone(pgid: u32) {
    while group_has_live_members(pgid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a process of the group `pgid` is still running. Zombies do not
/// count: a process of the group that outlived the service was reparented
/// to init, and is dead, not running, until init reaps it. Reads `/proc`;
/// where that cannot be read, asks the kernel whether the group has any
/// process at all.
fn group_has_live_members(pgid: u32) -> bool {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return i32::try_from(pgid)
            .is_ok_and(|raw| killpg(Pid::from_raw(raw), None) != Err(Errno::ESRCH));
    };
    processes.flatten().any(|process| {
        let stat = std::fs::read_to_string(process.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = fields.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|pgrp| pgrp.parse::<u32>().ok());
        group == Some(pgid) && state != Some("Z")
    })
}

/// Sends `signal` to the process group `pgid`; an empty group is fine.
fn signal_group(pgid: u32, signal: Signal, service: &str) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => warn!(service, pgid, %signal, %error, "cannot signal the process group"),
    }
}

/// Copies a service's output into its log, line by line, until the pipe
/// closes. The log is written synchronously: lines are small and the file
/// is local, so this does not hold the runtime up in practice.
async fn pump(output: impl AsyncRead + Unpin, log: Arc<Mutex<RotatingLog>>, service: String) {
    let mut output = BufReader::new(output);
    let mut line = Vec::new();
    let mut write_failed = false;
    loop {
        line.clear();
        match output.read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                if let Err(error) = log.write_line(&line)
                    && !write_failed
                {
                    write_failed = true;
                    warn!(service, path = %log.path().display(), %error, "cannot write the log; dropping output");
                }
            }
            Err(error) => {
                warn!(service, %error, "cannot read the service's output");
                return;
            }
        }
    }
}
