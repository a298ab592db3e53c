//! Keeping deployed stacks running: the deployer watches its stacks and
//! heals them by policy.
//!
//! It reconciles, kube-style, from what the engine reports, never from
//! memory of what it did: the engine's events say at once that a container
//! died, was killed, ran out of memory or was removed, and a look at every
//! stack (one listing, one query, an HTTP probe each) on a timer catches
//! whatever the events missed, including whatever happened while the yard
//! was down. Each finding is written to the stack's health in the store and
//! announced on the bus, so the API, the stacks stream and the page show it.
//!
//! With [`RestartPolicy::OnFailure`] a stack that is down is made again:
//! its container is replaced (its data volume stays) through the same
//! idempotent steps that deployed it, after a backoff that doubles with
//! each restart in a row. One that keeps dying is given up on (`failed`,
//! with the reason) until a person restarts it. The yard's own doings (a
//! removal, a restart under way) are never mistaken for a failure: only a
//! completed deployment's stack is watched, and while it is being made
//! again, what its old container does is ignored.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use yard_core::{Deployment, DeploymentStatus, HealthReport, Person, StackHealth, StackName};
use yard_engine::{ContainerChange, StackEvent, StackState};

use super::{DeployError, Deployer};
use crate::now;

/// What the yard does when a stack goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Make it again, with backoff, until it keeps dying.
    OnFailure,
    /// Only say so.
    Never,
}

/// How the deployer keeps stacks running.
#[derive(Debug, Clone)]
pub struct HealingConfig {
    pub policy: RestartPolicy,
    /// The wait before a first restart; doubled for each restart in a row,
    /// up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// A stack restarted this often within `window` is given up on.
    pub max_restarts: u32,
    pub window: Duration,
    /// How often every stack is looked at, besides the events.
    pub check_every: Duration,
}

impl Default for HealingConfig {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::OnFailure,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_restarts: 5,
            window: Duration::from_secs(600),
            check_every: Duration::from_secs(30),
        }
    }
}

/// What the watcher remembers about one stack between findings. Only
/// hints about the present: losing it (a restart of the yard) loses
/// nothing the next look cannot tell again.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    /// The container the yard last saw running; events of others (a
    /// replaced one) are old news.
    container: Option<String>,
    /// A signal someone sent it, and when: a death right after it was a
    /// stop or a kill by hand.
    signalled: Option<(String, Instant)>,
    /// When the kernel killed it for memory.
    out_of_memory: Option<Instant>,
    /// When the yard restarted it lately.
    restarts: VecDeque<Instant>,
    /// A restart is scheduled or under way.
    healing: bool,
    /// When the stack was last made (deployed, or made again).
    settled_at: Option<Instant>,
    /// Containers the yard replaced: what they do now is old news.
    retired: Vec<String>,
}

/// How recent a signal or an out-of-memory kill must be to explain a death.
const EXPLAINS: Duration = Duration::from_secs(10);
/// How long the watcher waits before following the engine's events again.
const RESUBSCRIBE: Duration = Duration::from_secs(1);
/// How long a look at the stacks leaves a container that stopped to its
/// events, which say why it stopped.
const EVENTS_ARRIVE: Duration = Duration::from_secs(3);
/// How long after a network change the stacks are looked at.
const NETWORK_SETTLES: Duration = Duration::from_secs(1);
/// How many stacks are probed at once in a look at all of them.
const PROBES_AT_ONCE: usize = 16;

impl Deployer {
    /// Watches the stacks until `stopping`: the engine's events as they
    /// come, and every `check_every` a look at all of them.
    pub async fn watch(&self, stopping: CancellationToken) {
        let mut ticks = tokio::time::interval(self.inner.config.healing.check_every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            let mut events = self.inner.engine.stack_events();
            // Whatever happened while nobody was listening.
            self.check_stacks().await;
            loop {
                tokio::select! {
                    biased;
                    event = events.next() => match event {
                        Some(Ok(event)) => self.on_event(event).await,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "lost the engine's events; following them again");
                            break;
                        }
                        None => break,
                    },
                    _ = ticks.tick() => self.check_stacks().await,
                    () = stopping.cancelled() => return,
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RESUBSCRIBE) => {}
                () = stopping.cancelled() => return,
            }
        }
    }

    /// Looks at every stack once and records what it finds. Failures are
    /// logged: the next look tries again.
    pub async fn check_stacks(&self) {
        if let Err(e) = self.try_check_stacks().await {
            tracing::warn!(error = %e, "cannot look at the stacks now");
        }
    }

    async fn try_check_stacks(&self) -> Result<(), DeployError> {
        let looked_at = Instant::now();
        let states: HashMap<StackName, StackState> = self
            .inner
            .engine
            .stack_states()
            .await?
            .into_iter()
            .collect();
        let completed: Vec<Deployment> = self
            .inner
            .store
            .live_deployments()
            .await?
            .into_iter()
            .filter(|d| d.status == DeploymentStatus::Completed)
            .collect();
        let findings = futures::stream::iter(completed)
            .map(|deployment| {
                let state = states.get(&deployment.name).cloned();
                async move { (deployment.name, self.finding(state).await) }
            })
            .buffer_unordered(PROBES_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        for (name, finding) in findings {
            self.observe(&name, finding, looked_at).await;
        }
        Ok(())
    }

    /// What one look at a stack's state means.
    async fn finding(&self, state: Option<StackState>) -> Finding {
        match state {
            None => Finding::Down {
                container: None,
                health: StackHealth::Missing,
                reason: "its container is gone".to_owned(),
            },
            // Just now: its events, on their way, say better why.
            Some(StackState::Exited { finished, .. })
                if finished
                    .as_deref()
                    .and_then(|at| humantime::parse_rfc3339(at).ok())
                    .and_then(|at| at.elapsed().ok())
                    .is_some_and(|ago| ago < EVENTS_ARRIVE) =>
            {
                Finding::Settling
            }
            Some(StackState::Exited { id, code, oom, .. }) => Finding::Down {
                container: Some(id),
                health: StackHealth::Stopped,
                reason: if oom {
                    out_of_memory()
                } else {
                    format!("it exited with code {code}")
                },
            },
            Some(StackState::Running {
                id,
                attached: false,
                ..
            }) => Finding::Down {
                container: Some(id),
                health: StackHealth::Missing,
                reason: "it lost its network".to_owned(),
            },
            Some(StackState::Running {
                id,
                healthy,
                endpoint,
                ..
            }) => {
                let healthy = match (healthy, endpoint) {
                    (Some(verdict), _) => verdict,
                    (None, Some(endpoint)) => self.inner.engine.probe(&endpoint).await,
                    (None, None) => false,
                };
                Finding::Up {
                    container: id,
                    healthy: Some(healthy),
                }
            }
        }
    }

    async fn on_event(&self, event: StackEvent) {
        let (stack, container, change) = match event {
            StackEvent::Network => return self.check_stacks_soon(),
            StackEvent::Container { stack, id, change } => (stack, id, change),
        };
        let finding = match change {
            ContainerChange::Signalled(signal) => {
                self.tracker(&stack, |t| {
                    // A stop is SIGTERM and, when that is not enough,
                    // SIGKILL: the first one says what was meant.
                    let stopping = t
                        .signalled
                        .as_ref()
                        .is_some_and(|(first, at)| is_term(first) && at.elapsed() < EXPLAINS);
                    if !stopping {
                        t.signalled = Some((signal, Instant::now()));
                    }
                });
                return;
            }
            ContainerChange::OutOfMemory => {
                self.tracker(&stack, |t| t.out_of_memory = Some(Instant::now()));
                return;
            }
            ContainerChange::Died { code } => Finding::Down {
                reason: self.tracker(&stack, |t| death(t, code)),
                container: Some(container),
                health: StackHealth::Stopped,
            },
            ContainerChange::Removed => Finding::Down {
                container: Some(container),
                health: StackHealth::Missing,
                reason: "its container was removed".to_owned(),
            },
            ContainerChange::Started => Finding::Up {
                container,
                healthy: None,
            },
            ContainerChange::Health(healthy) => Finding::Up {
                container,
                healthy: Some(healthy),
            },
        };
        self.observe(&stack, finding, Instant::now()).await;
    }

    /// Looks at every stack in a moment: a network change comes through
    /// its own feed, often before the events of the containers it concerns,
    /// which say better what happened.
    fn check_stacks_soon(&self) {
        let this = self.clone();
        let stopping = self.inner.stopping.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(NETWORK_SETTLES) => this.check_stacks().await,
                () = stopping.cancelled() => {}
            }
        });
    }

    /// Records a finding about `stack`, made at `seen_at`, and acts on it
    /// by policy. A finding from before the stack was last made (deployed
    /// or made again) is about a container that has moved on: ignored.
    async fn observe(&self, stack: &StackName, finding: Finding, seen_at: Instant) {
        let about = match &finding {
            Finding::Down { container, .. } => container.clone(),
            Finding::Up { container, .. } => Some(container.clone()),
            Finding::Settling => None,
        };
        let old_news = self.tracker(stack, |t| {
            t.settled_at.is_some_and(|at| seen_at < at)
                || about.as_ref().is_some_and(|id| t.retired.contains(id))
        });
        if old_news {
            return;
        }
        let deployment = match self.inner.store.live_deployment(stack).await {
            Ok(Some(d)) if d.status == DeploymentStatus::Completed => d,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(%stack, error = %e, "cannot record the stack's health");
                return;
            }
        };
        let current = &deployment.health;
        let report = match finding {
            Finding::Settling => return,
            Finding::Down {
                container,
                health,
                reason,
            } => {
                let stale = self.tracker(stack, |t| {
                    t.healing
                        || matches!((&t.container, &container), (Some(known), Some(seen)) if known != seen)
                });
                // Given up on, already known to be down, or the yard's own
                // doing: nothing new.
                if stale
                    || current.health == StackHealth::Failed
                    || (current.health.is_down() && health == StackHealth::Stopped)
                    || current.health == health
                {
                    return;
                }
                tracing::warn!(%stack, %health, %reason, "stack down");
                self.remember_endpoint(stack, None);
                HealthReport {
                    health,
                    last_failure: Some(reason.clone()),
                    reason: Some(reason),
                    restarts: current.restarts,
                }
            }
            Finding::Up { container, healthy } => {
                let healing = self.tracker(stack, |t| {
                    if !t.healing {
                        t.container = Some(container);
                    }
                    t.healing
                });
                let (health, reason) = match healthy {
                    Some(false) => (
                        StackHealth::Unhealthy,
                        Some("it does not answer well (no HTTP status below 500, or its own health check says unhealthy)".to_owned()),
                    ),
                    _ => (StackHealth::Running, None),
                };
                if healing || (current.health == health && current.reason == reason) {
                    return;
                }
                HealthReport {
                    health,
                    reason,
                    restarts: current.restarts,
                    last_failure: current.last_failure.clone(),
                }
            }
        };
        let down = report.health.is_down();
        if self.record_health(&deployment, report).await.is_err() {
            return;
        }
        if down && self.inner.config.healing.policy == RestartPolicy::OnFailure {
            self.schedule_restart(stack.clone());
        }
    }

    /// Writes `report` as `deployment`'s health and announces it.
    async fn record_health(
        &self,
        deployment: &Deployment,
        report: HealthReport,
    ) -> Result<(), DeployError> {
        let at = now();
        self.inner
            .store
            .set_health(&deployment.id, &report, at)
            .await
            .inspect_err(|e| {
                tracing::warn!(stack = %deployment.name, error = %e, "cannot record the stack's health");
            })?;
        let mut changed = deployment.clone();
        changed.health = report;
        changed.updated_at = at;
        self.publish(&changed);
        Ok(())
    }

    /// Restarts `stack` after its backoff, or gives up on it if it keeps
    /// dying.
    fn schedule_restart(&self, stack: StackName) {
        let config = &self.inner.config.healing;
        let wait = self.tracker(&stack, |t| {
            if t.healing {
                return None;
            }
            let window = config.window;
            t.restarts.retain(|at| at.elapsed() < window);
            let recent = u32::try_from(t.restarts.len()).unwrap_or(u32::MAX);
            if recent >= config.max_restarts {
                return Some(Err(recent));
            }
            t.healing = true;
            let doubled = config.backoff.saturating_mul(1 << recent.min(16));
            Some(Ok(doubled.min(config.max_backoff)))
        });
        let this = self.clone();
        match wait {
            None => {}
            Some(Err(recent)) => {
                self.inner
                    .tasks
                    .spawn(async move { this.give_up(&stack, recent).await });
            }
            Some(Ok(wait)) => {
                let stopping = self.inner.stopping.clone();
                self.inner.tasks.spawn(async move {
                    let restarted = async {
                        tokio::time::sleep(wait).await;
                        this.make_again(&stack).await
                    };
                    tokio::select! {
                        restarted = restarted => if let Err(e) = restarted {
                            tracing::warn!(%stack, error = %e, "restart failed");
                        },
                        // The next start looks again.
                        () = stopping.cancelled() => {}
                    }
                });
            }
        }
    }

    /// Marks `stack` failed: it kept dying.
    async fn give_up(&self, stack: &StackName, restarts: u32) {
        let Ok(Some(deployment)) = self.inner.store.live_deployment(stack).await else {
            return;
        };
        let window = humane(self.inner.config.healing.window);
        let last = deployment
            .health
            .last_failure
            .clone()
            .unwrap_or_else(|| "it went down".to_owned());
        let reason = format!(
            "it kept dying ({restarts} restarts within {window}); last: {last}. Restart it by hand once it is fixed."
        );
        tracing::error!(%stack, %reason, "stack given up on");
        let report = HealthReport {
            health: StackHealth::Failed,
            reason: Some(reason),
            restarts: deployment.health.restarts,
            last_failure: Some(last),
        };
        let _ = self.record_health(&deployment, report).await;
    }

    /// Makes `stack` again: replaces its container (its data stays) through
    /// the deploying steps, and waits until it answers.
    async fn make_again(&self, stack: &StackName) -> Result<Deployment, DeployError> {
        let _turn = self.inner.locks.lock(stack.as_str()).await;
        let deployment = match self.inner.store.live_deployment(stack).await? {
            Some(d) if d.status == DeploymentStatus::Completed => d,
            _ => {
                self.tracker(stack, |t| t.healing = false);
                return Err(DeployError::NoSuchStack(stack.to_string()));
            }
        };
        // Another daemon on the same database may be healing it already.
        if !self.claim(&deployment, false).await? {
            self.tracker(stack, |t| t.healing = false);
            return Err(DeployError::InProgress(stack.to_string()));
        }
        let made = self.make_again_leased(stack, &deployment).await;
        self.release(&deployment).await;
        made
    }

    async fn make_again_leased(
        &self,
        stack: &StackName,
        deployment: &Deployment,
    ) -> Result<Deployment, DeployError> {
        self.tracker(stack, |t| {
            t.healing = true;
            t.restarts.push_back(Instant::now());
        });
        let restarts = deployment.health.restarts.saturating_add(1);
        let last_failure = deployment.health.last_failure.clone();
        self.record_health(
            deployment,
            HealthReport {
                health: StackHealth::Restarting,
                reason: last_failure.as_ref().map(|f| format!("restarting: {f}")),
                restarts,
                last_failure: last_failure.clone(),
            },
        )
        .await?;
        tracing::info!(%stack, restarts, "making the stack again");
        let engine = &self.inner.engine;
        let spec = self.spec_for(deployment);
        let made = async {
            if let Some(old) = engine.remove_application(stack).await? {
                self.tracker(stack, |t| {
                    t.retired.push(old);
                    // A few are enough: events of older ones are long past.
                    if t.retired.len() > 8 {
                        t.retired.remove(0);
                    }
                });
            }
            engine.ensure_project(&spec).await?;
            engine.ensure_application(&spec).await?;
            engine.deploy(&spec, self.inner.config.deploy_timeout).await
        }
        .await;
        let report = match made {
            Ok(endpoint) => {
                self.remember_endpoint(stack, Some(endpoint));
                let container = engine.stack_states().await.ok().and_then(|states| {
                    states.into_iter().find_map(|(name, state)| match state {
                        StackState::Running { id, .. } if name == *stack => Some(id),
                        _ => None,
                    })
                });
                self.tracker(stack, |t| {
                    t.container = container;
                    t.healing = false;
                    t.settled_at = Some(Instant::now());
                });
                HealthReport {
                    health: StackHealth::Running,
                    reason: None,
                    restarts,
                    last_failure,
                }
            }
            Err(e) => {
                self.tracker(stack, |t| t.healing = false);
                let reason = format!("the restart failed: {e}");
                HealthReport {
                    health: StackHealth::Stopped,
                    last_failure: Some(reason.clone()),
                    reason: Some(reason),
                    restarts,
                }
            }
        };
        let down = report.health.is_down();
        self.record_health(deployment, report).await?;
        if down && self.inner.config.healing.policy == RestartPolicy::OnFailure {
            self.schedule_restart(stack.clone());
        }
        Ok(self
            .inner
            .store
            .live_deployment(stack)
            .await?
            .unwrap_or_else(|| deployment.clone()))
    }

    /// Restarts the stack named `raw` now, for a person who may manage it:
    /// its container is made again, whatever its health, and a stack that
    /// was given up on gets a fresh count of restarts.
    pub async fn restart_stack(&self, raw: &str, by: &Person) -> Result<Deployment, DeployError> {
        let deployment = self.managed_stack(raw, by).await?;
        let name = deployment.name.clone();
        if deployment.status != DeploymentStatus::Completed {
            return Err(DeployError::InProgress(name.to_string()));
        }
        self.tracker(&name, |t| {
            t.restarts.clear();
            t.healing = false;
        });
        tracing::info!(stack = %name, by = %by.owner.name, "restart asked for");
        self.make_again(&name).await
    }

    /// Tells the watcher the yard itself is remaking the stack (or not), so
    /// what its old container does meanwhile is not taken for a failure.
    pub(super) fn mark_healing(&self, stack: &StackName, healing: bool) {
        self.tracker(stack, |t| t.healing = healing);
    }

    /// A stack was just deployed or removed: what the watcher knew of it
    /// is old news, and so is any look at it from before.
    pub(super) fn forget_tracker(&self, stack: &StackName) {
        let fresh = Tracker {
            settled_at: Some(Instant::now()),
            ..Tracker::default()
        };
        self.inner
            .trackers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stack.clone(), fresh);
    }

    /// Runs `f` on `stack`'s tracker.
    fn tracker<T>(&self, stack: &StackName, f: impl FnOnce(&mut Tracker) -> T) -> T {
        let mut trackers = self
            .inner
            .trackers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(trackers.entry(stack.clone()).or_default())
    }
}

/// What one look at a stack found.
#[derive(Debug)]
enum Finding {
    /// It changed just now; its events tell the rest.
    Settling,
    Down {
        container: Option<String>,
        health: StackHealth,
        reason: String,
    },
    Up {
        container: String,
        /// `None` when it just started and nobody knows yet.
        healthy: Option<bool>,
    },
}

/// Why a container that died with `code` did, given what the tracker saw
/// just before.
fn death(tracker: &mut Tracker, code: i64) -> String {
    let recent = |at: &Instant| at.elapsed() < EXPLAINS;
    let out_of_memory_now = tracker.out_of_memory.take().is_some_and(|at| recent(&at));
    let signalled = tracker.signalled.take().filter(|(_, at)| recent(at));
    if out_of_memory_now {
        return out_of_memory();
    }
    match signalled {
        Some((signal, _)) if matches!(signal.as_str(), "9" | "KILL" | "SIGKILL") => {
            "it was killed by hand".to_owned()
        }
        Some((signal, _)) if is_term(&signal) => {
            format!("it was stopped by hand (exit code {code})")
        }
        Some((signal, _)) => format!("it was stopped by signal {signal} (exit code {code})"),
        None => format!("it exited with code {code}"),
    }
}

fn is_term(signal: &str) -> bool {
    matches!(signal, "15" | "TERM" | "SIGTERM")
}

fn out_of_memory() -> String {
    "it ran out of memory (the kernel killed it at its limit)".to_owned()
}

/// `10m`, `90s`.
fn humane(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deaths_are_explained_by_what_came_just_before() {
        let mut tracker = Tracker::default();
        assert_eq!(death(&mut tracker, 3), "it exited with code 3");
        tracker.signalled = Some(("15".to_owned(), Instant::now()));
        assert_eq!(
            death(&mut tracker, 143),
            "it was stopped by hand (exit code 143)"
        );
        tracker.signalled = Some(("9".to_owned(), Instant::now()));
        assert_eq!(death(&mut tracker, 137), "it was killed by hand");
        tracker.out_of_memory = Some(Instant::now());
        tracker.signalled = Some(("9".to_owned(), Instant::now()));
        assert!(death(&mut tracker, 137).contains("out of memory"));
        assert_eq!(
            death(&mut tracker, 1),
            "it exited with code 1",
            "each hint explains one death"
        );
        assert_eq!(humane(Duration::from_secs(600)), "10m");
        assert_eq!(humane(Duration::from_secs(90)), "90s");
    }
}
