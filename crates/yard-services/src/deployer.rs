//! The deployer: turns "deploy alice" into a running stack, and back.
//!
//! A deployment is a row in the store plus a task that runs its steps
//! (project, application, deploy). Every step is recorded before it starts
//! and announced on the bus after it is stored. A step that fails removes
//! everything labelled with the stack's name, then records `failed` with the
//! reason. The daemon may die at any point: at the next start, [`Deployer::resume`]
//! re-runs every unfinished deployment (the engine's steps adopt what exists),
//! and [`Deployer::sweep_orphans`] removes labelled resources that no live
//! deployment owns. One lock per stack name keeps these from overlapping.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use yard_core::{
    Deployment, DeploymentId, DeploymentStatus, HealthReport, ImageRef, ImageRefError, NameError,
    NamePolicy, Owner, Person, StackAddressing, StackHealth, StackName, TransitionError,
};
use yard_engine::{
    Endpoint, Engine, EngineError, ResourceLimits, StackResource, StackSpec, UpdateOutcome,
};
use yard_store::{Store, StoreError};

use crate::locks::NameLocks;
use crate::{EventBus, YardEvent, now};

mod health;

pub use health::{HealingConfig, RestartPolicy};

/// What the deployer needs to know about stacks.
#[derive(Debug, Clone)]
pub struct DeployerConfig {
    /// The image new stacks run.
    pub stack_image: String,
    /// The port stacks listen on; `None` takes the image's first exposed port.
    pub stack_port: Option<u16>,
    /// Extra environment for every stack container.
    pub stack_env: Vec<(String, String)>,
    pub addressing: StackAddressing,
    pub names: NamePolicy,
    /// How long a stack may take to answer after it starts.
    pub deploy_timeout: Duration,
    /// What each stack's container may use.
    pub limits: ResourceLimits,
    /// How stacks are watched and brought back.
    pub healing: HealingConfig,
    /// How long a daemon's claim on a deployment lasts without renewal:
    /// another daemon on the same database takes over work whose daemon
    /// died this long after it stopped renewing.
    pub lease_ttl: Duration,
}

/// Why a request to the deployer was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error("the name {0:?} is already taken by another stack")]
    NameTaken(String),
    #[error("there is no stack named {0:?}")]
    NoSuchStack(String),
    #[error("stack {0:?} is still deploying; wait until it has completed or failed")]
    InProgress(String),
    #[error("stack {name:?} belongs to {owner}; only its owner or an admin may remove it")]
    NotOwner { name: String, owner: String },
    #[error(transparent)]
    InvalidImage(#[from] ImageRefError),
    #[error("the update of stack {name:?} to {image} was rolled back: {reason}")]
    RolledBack {
        name: String,
        image: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// The answer to "can I have this name?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameAvailability {
    Available(StackName),
    Invalid(NameError),
    Taken(StackName),
}

/// Where the host router should send a request for a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No live stack has this name.
    Unknown,
    /// The stack exists but cannot take requests now; the reason says why.
    Unavailable(String),
    /// Proxy to here.
    Ready(Endpoint),
}

/// Whether one thing the deployer depends on answers.
#[derive(Debug, Clone)]
pub struct ConnectionCheck {
    /// What was checked, e.g. `store (sqlite)`, `engine (docker)`.
    pub name: String,
    /// `Err` with what is wrong.
    pub result: Result<(), String>,
    pub took: Duration,
}

/// The deployer; cheap to clone.
#[derive(Debug, Clone)]
pub struct Deployer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    engine: Arc<dyn Engine>,
    bus: EventBus,
    config: DeployerConfig,
    locks: NameLocks,
    tasks: TaskTracker,
    /// Cancelled when the daemon stops: runs stop between steps and resume
    /// at the next start.
    stopping: CancellationToken,
    /// Where each completed stack answers, learnt from the engine.
    endpoints: RwLock<HashMap<StackName, Endpoint>>,
    /// What the watcher remembers of each stack between findings.
    trackers: std::sync::Mutex<HashMap<StackName, health::Tracker>>,
    /// Bumped by every announced change of a deployment.
    changes: AtomicU64,
    /// The live stacks as of a value of `changes`.
    stacks: RwLock<Option<(u64, Arc<Vec<Deployment>>)>>,
    /// This daemon's name on the leases it holds: new for every process,
    /// so a restarted daemon never mistakes a dead one's lease for its own.
    holder: String,
}

impl Deployer {
    pub fn new(
        store: Store,
        engine: Arc<dyn Engine>,
        bus: EventBus,
        config: DeployerConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                engine,
                bus,
                config,
                locks: NameLocks::default(),
                tasks: TaskTracker::new(),
                stopping: CancellationToken::new(),
                endpoints: RwLock::default(),
                trackers: std::sync::Mutex::default(),
                changes: AtomicU64::new(0),
                stacks: RwLock::default(),
                holder: format!("yard-{}", uuid::Uuid::new_v4().simple()),
            }),
        }
    }

    /// How many deployments are live (under way or completed).
    pub async fn count_active(&self) -> Result<u64, DeployError> {
        Ok(self.inner.store.count_active().await?)
    }

    /// The `limit` most recent deployments, newest first.
    pub async fn history(&self, limit: i64) -> Result<Vec<Deployment>, DeployError> {
        Ok(self.inner.store.deployments(limit).await?)
    }

    /// The deployment `id`, if there is one.
    pub async fn deployment(&self, id: &str) -> Result<Option<Deployment>, DeployError> {
        Ok(self.inner.store.deployment(id).await?)
    }

    /// The live deployment of the stack `name`, if there is one.
    pub async fn live_stack(&self, name: &StackName) -> Result<Option<Deployment>, DeployError> {
        Ok(self.inner.store.live_deployment(name).await?)
    }

    /// Whether the store and the backend answer, and how long each took.
    pub async fn check_connections(&self) -> Vec<ConnectionCheck> {
        let started = std::time::Instant::now();
        let store = self.inner.store.ping().await.map_err(|e| e.to_string());
        let store = ConnectionCheck {
            name: format!(
                "store ({})",
                format!("{:?}", self.inner.store.backend()).to_lowercase()
            ),
            result: store,
            took: started.elapsed(),
        };
        let started = std::time::Instant::now();
        let engine = self.inner.engine.ping().await.map_err(|e| e.to_string());
        let engine = ConnectionCheck {
            name: format!("engine ({})", self.inner.engine.backend()),
            result: engine,
            took: started.elapsed(),
        };
        vec![store, engine]
    }

    pub fn config(&self) -> &DeployerConfig {
        &self.inner.config
    }

    /// Whether `raw` could be deployed now, and if not, why.
    pub async fn check_name(&self, raw: &str) -> Result<NameAvailability, DeployError> {
        let name = match self.inner.config.names.parse(raw) {
            Ok(name) => name,
            Err(e) => return Ok(NameAvailability::Invalid(e)),
        };
        Ok(match self.inner.store.live_deployment(&name).await? {
            Some(_) => NameAvailability::Taken(name),
            None => NameAvailability::Available(name),
        })
    }

    /// Records a deployment of `raw`, owned by `owner`, and starts running
    /// it. Returns at once; progress arrives on the bus.
    pub async fn deploy(&self, raw: &str, owner: &Owner) -> Result<Deployment, DeployError> {
        let name = self.inner.config.names.parse(raw)?;
        let url = self.inner.config.addressing.url_for(&name);
        let mut deployment =
            Deployment::new(name, url, self.inner.config.stack_image.clone(), now());
        deployment.owner = Some(owner.clone());
        let lease = (self.inner.holder.as_str(), self.lease_expiry());
        match self
            .inner
            .store
            .insert_leased_deployment(&deployment, Some(lease))
            .await
        {
            Ok(()) => {}
            Err(StoreError::NameTaken(name)) => return Err(DeployError::NameTaken(name)),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(deployment = %deployment.id, stack = %deployment.name, image = %deployment.image, "deployment accepted");
        self.publish(&deployment);
        self.spawn_run(deployment.clone());
        Ok(deployment)
    }

    /// The deployment `id`'s current state and each newer one until it
    /// settles; `None` when there is no such deployment.
    pub async fn follow(
        &self,
        id: &str,
    ) -> Result<Option<impl futures::Stream<Item = Deployment> + Send + use<>>, DeployError> {
        let events = self.inner.bus.subscribe();
        let Some(current) = self.inner.store.deployment(id).await? else {
            return Ok(None);
        };
        Ok(Some(crate::follow::follow(
            current,
            events,
            self.inner.store.clone(),
        )))
    }

    /// Removes the stack named `raw` and everything it owns, when `by` may
    /// manage it. Waits until the engine has removed it.
    pub async fn destroy(&self, raw: &str, by: &Person) -> Result<Deployment, DeployError> {
        // Refuse at once rather than queue behind a running deployment.
        let current = self.managed_stack(raw, by).await?;
        let name = current.name.clone();
        let missing = || DeployError::NoSuchStack(name.to_string());
        if current.status.is_in_progress() {
            return Err(DeployError::InProgress(name.to_string()));
        }
        let _guard = self.inner.locks.lock(name.as_str()).await;
        let mut deployment = self
            .inner
            .store
            .live_deployment(&name)
            .await?
            .ok_or_else(missing)?;
        if deployment.status.is_in_progress() || !self.claim(&deployment, false).await? {
            return Err(DeployError::InProgress(name.to_string()));
        }
        let removed = self.remove(&mut deployment).await;
        self.release(&deployment).await;
        removed?;
        Ok(deployment)
    }

    /// The live stack named `raw`, when `by` may manage it.
    pub(crate) async fn managed_stack(
        &self,
        raw: &str,
        by: &Person,
    ) -> Result<Deployment, DeployError> {
        let name = StackName::from_trusted(raw.trim().to_lowercase());
        let deployment = self
            .inner
            .store
            .live_deployment(&name)
            .await?
            .ok_or_else(|| DeployError::NoSuchStack(name.to_string()))?;
        if !by.may_manage(deployment.owner.as_ref()) {
            return Err(DeployError::NotOwner {
                name: name.to_string(),
                owner: deployment
                    .owner
                    .map_or_else(|| "the admin".to_owned(), |o| o.name),
            });
        }
        Ok(deployment)
    }

    /// Runs the stack named `raw` on `image` instead, by the backend's
    /// rolling update (a backend without one says so): the stack keeps
    /// answering while it can, and a new image that fails is rolled back.
    /// Either way the deployment's record says what happened.
    pub async fn update_stack(
        &self,
        raw: &str,
        image: &str,
        by: &Person,
    ) -> Result<Deployment, DeployError> {
        let image = ImageRef::parse(image)?.to_string();
        let mut deployment = self.managed_stack(raw, by).await?;
        let name = deployment.name.clone();
        let _guard = self.inner.locks.lock(name.as_str()).await;
        if deployment.status != DeploymentStatus::Completed
            || !self.claim(&deployment, false).await?
        {
            return Err(DeployError::InProgress(name.to_string()));
        }
        // The old task's exit during the update is the update's doing, not
        // a crash for the watcher to heal.
        self.mark_healing(&name, true);
        tracing::info!(stack = %name, %image, by = %by.owner.name, "rolling update");
        let updated = self
            .inner
            .engine
            .update_image(&name, &image, self.inner.config.deploy_timeout)
            .await;
        self.forget_tracker(&name);
        self.remember_endpoint(&name, None);
        let outcome = match updated {
            Ok(outcome) => outcome,
            Err(e) => {
                self.release(&deployment).await;
                return Err(e.into());
            }
        };
        let rolled_back = match outcome {
            UpdateOutcome::Updated => {
                deployment.message = Some(format!("updated from {} to {image}", deployment.image));
                deployment.image = image.clone();
                None
            }
            UpdateOutcome::RolledBack { reason } => {
                deployment.message = Some(format!(
                    "the update to {image} was rolled back ({reason}); it still runs {}",
                    deployment.image
                ));
                Some(reason)
            }
        };
        deployment.seq += 1;
        deployment.updated_at = now();
        let recorded = self.inner.store.save_deployment(&deployment).await;
        self.release(&deployment).await;
        recorded?;
        self.publish(&deployment);
        match rolled_back {
            None => Ok(deployment),
            Some(reason) => Err(DeployError::RolledBack {
                name: name.to_string(),
                image,
                reason,
            }),
        }
    }

    /// Finishes what a previous run of the daemon left under way: resumes
    /// unfinished deployments and removals. Returns how many. On a shared
    /// database only work whose lease nobody holds is taken: another live
    /// daemon's is left to it.
    pub async fn resume(&self) -> Result<usize, DeployError> {
        let active = self.inner.store.active_deployments().await?;
        let force = !self.inner.store.is_shared();
        let mut count = 0;
        for deployment in active {
            if !self.claim(&deployment, force).await? {
                continue;
            }
            tracing::info!(deployment = %deployment.id, stack = %deployment.name, status = %deployment.status, "resuming");
            self.spawn_work(deployment);
            count += 1;
        }
        Ok(count)
    }

    /// Takes over work whose daemon died: deployments and removals under
    /// way whose lease expired. Every daemon on a shared database calls
    /// this on a timer; the claim lets one win. Returns how many.
    pub async fn take_over(&self) -> Result<usize, DeployError> {
        let orphaned = self
            .inner
            .store
            .unleased_active_deployments(now().0)
            .await?;
        let mut count = 0;
        for deployment in orphaned {
            if !self.claim(&deployment, false).await? {
                continue;
            }
            tracing::warn!(deployment = %deployment.id, stack = %deployment.name, status = %deployment.status, "taking over work whose daemon stopped renewing its lease");
            self.spawn_work(deployment);
            count += 1;
        }
        Ok(count)
    }

    /// How long leases last, and so how often a daemon looks for work to
    /// take over.
    pub fn lease_ttl(&self) -> Duration {
        self.inner.config.lease_ttl
    }

    fn lease_expiry(&self) -> i64 {
        let ttl = i64::try_from(self.inner.config.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        now().0.saturating_add(ttl)
    }

    /// Takes `deployment`'s lease for this daemon; see
    /// [`Store::claim_deployment`].
    async fn claim(&self, deployment: &Deployment, force: bool) -> Result<bool, DeployError> {
        Ok(self
            .inner
            .store
            .claim_deployment(
                &deployment.id,
                &self.inner.holder,
                self.lease_expiry(),
                now().0,
                force,
            )
            .await?)
    }

    async fn release(&self, deployment: &Deployment) {
        if let Err(e) = self
            .inner
            .store
            .release_lease(&deployment.id, &self.inner.holder)
            .await
        {
            tracing::warn!(deployment = %deployment.id, error = %e, "cannot release the lease; it expires by itself");
        }
    }

    /// Renews the lease of `id` until it is lost (another daemon took the
    /// work over, after this one failed to renew in time); returns then.
    async fn keep_lease(&self, id: DeploymentId) {
        let every = self.inner.config.lease_ttl / 3;
        loop {
            tokio::time::sleep(every).await;
            match self
                .inner
                .store
                .renew_lease(&id, &self.inner.holder, self.lease_expiry())
                .await
            {
                Ok(true) => {}
                Ok(false) => return,
                // The store is away: the lease may lapse and the work move
                // on; keep trying until it says so.
                Err(e) => tracing::warn!(deployment = %id, error = %e, "cannot renew the lease"),
            }
        }
    }

    /// Runs a leased deployment's remaining work (its steps, or its
    /// removal) in the background, renewing the lease meanwhile and giving
    /// it up at the end.
    fn spawn_work(&self, deployment: Deployment) {
        if deployment.status.is_in_progress() {
            self.spawn_run(deployment);
            return;
        }
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            let _guard = this.inner.locks.lock(deployment.name.as_str()).await;
            let mut work = deployment.clone();
            tokio::select! {
                removed = this.remove(&mut work) => {
                    if let Err(e) = removed {
                        tracing::error!(stack = %work.name, error = %e, "resumed removal failed; will retry at the next sweep");
                    }
                }
                () = this.keep_lease(deployment.id.clone()) => {
                    tracing::warn!(stack = %deployment.name, "another daemon took the removal over");
                    return;
                }
            }
            this.release(&deployment).await;
        });
    }

    /// Removes labelled resources that no live deployment owns: what a
    /// crash left between creating a resource and recording a failure, or
    /// what someone left behind by hand. Returns what was removed.
    pub async fn sweep_orphans(&self) -> Result<Vec<StackResource>, DeployError> {
        let names: BTreeSet<StackName> = self
            .inner
            .engine
            .stack_resources()
            .await?
            .into_iter()
            .map(|r| r.stack)
            .collect();
        // One query for all, not one per stack: only the orphans need a
        // second look, under their lock.
        let live: BTreeSet<StackName> = self
            .inner
            .store
            .live_deployments()
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let mut removed = Vec::new();
        for name in names.difference(&live) {
            let _guard = self.inner.locks.lock(name.as_str()).await;
            // Checked under the lock: a deployment of this name may have
            // started since the listing.
            if self.inner.store.live_deployment(name).await?.is_some() {
                continue;
            }
            for resource in self.inner.engine.remove_stack(name).await? {
                tracing::warn!(kind = %resource.kind, name = %resource.name, stack = %resource.stack, "removed orphaned resource");
                removed.push(resource);
            }
        }
        Ok(removed)
    }

    /// Where requests for the stack labelled `label` in a Host header go.
    pub async fn route(&self, label: &str) -> Result<Route, DeployError> {
        let Ok(name) = self.inner.config.names.parse(label) else {
            return Ok(Route::Unknown);
        };
        if let Some(endpoint) = self.cached_endpoint(&name) {
            return Ok(Route::Ready(endpoint));
        }
        let Some(deployment) = self.inner.store.live_deployment(&name).await? else {
            return Ok(Route::Unknown);
        };
        if deployment.status != DeploymentStatus::Completed {
            return Ok(Route::Unavailable(format!(
                "stack {name} is {}",
                deployment.status.step_label().to_lowercase()
            )));
        }
        let health = &deployment.health;
        if matches!(
            health.health,
            StackHealth::Stopped
                | StackHealth::Missing
                | StackHealth::Restarting
                | StackHealth::Failed
        ) {
            let why = health
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            return Ok(Route::Unavailable(format!(
                "stack {name} is {}{why}",
                health.health
            )));
        }
        match self.inner.engine.endpoint(&name).await? {
            Some(endpoint) => {
                self.remember_endpoint(&name, Some(endpoint.clone()));
                Ok(Route::Ready(endpoint))
            }
            None => Ok(Route::Unavailable(format!("stack {name} is not running"))),
        }
    }

    /// Forgets where a stack answers, after the router failed to reach it
    /// there (its container may have restarted on another port).
    pub fn forget_endpoint(&self, label: &str) {
        self.remember_endpoint(&StackName::from_trusted(label.to_lowercase()), None);
    }

    /// Stops between steps: waits up to `grace` for running deployments to
    /// finish, then cancels the rest, which resume at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::info!(
                running = self.inner.tasks.len(),
                "stopping unfinished deployments; they resume at the next start"
            );
            self.inner.stopping.cancel();
            self.inner.tasks.wait().await;
        }
    }

    fn cached_endpoint(&self, name: &StackName) -> Option<Endpoint> {
        self.inner
            .endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn remember_endpoint(&self, name: &StackName, endpoint: Option<Endpoint>) {
        let mut endpoints = self
            .inner
            .endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner());
        match endpoint {
            Some(endpoint) => endpoints.insert(name.clone(), endpoint),
            None => endpoints.remove(name),
        };
    }

    fn spec_for(&self, deployment: &Deployment) -> StackSpec {
        let config = &self.inner.config;
        let mut env = vec![
            ("YARD_STACK_NAME".to_owned(), deployment.name.to_string()),
            ("YARD_STACK_URL".to_owned(), deployment.url.clone()),
        ];
        env.extend(config.stack_env.iter().cloned());
        StackSpec {
            name: deployment.name.clone(),
            image: deployment.image.clone(),
            port: config.stack_port,
            env,
            limits: config.limits,
        }
    }

    /// The live stacks, by name. Read from the store once per change and
    /// shared by every listing and stream until the next one: with hundreds
    /// of stacks and watchers, a change costs one query, not one each.
    pub async fn live_stacks(&self) -> Result<Arc<Vec<Deployment>>, DeployError> {
        // The version is read before the store: a change during the query
        // bumps it, and the next caller reads again.
        let version = self.inner.changes.load(Ordering::Acquire);
        if let Some((cached, stacks)) =
            &*self.inner.stacks.read().unwrap_or_else(|p| p.into_inner())
            && *cached == version
        {
            return Ok(Arc::clone(stacks));
        }
        let stacks = Arc::new(self.inner.store.live_deployments().await?);
        *self.inner.stacks.write().unwrap_or_else(|p| p.into_inner()) =
            Some((version, Arc::clone(&stacks)));
        Ok(stacks)
    }

    fn publish(&self, deployment: &Deployment) {
        self.inner.changes.fetch_add(1, Ordering::AcqRel);
        self.inner
            .bus
            .publish(YardEvent::Deployment(deployment.clone()));
    }

    /// Stores the move to `to`, then announces it. A step already passed
    /// (a resumed run) is neither stored nor announced again.
    async fn advance(
        &self,
        deployment: &mut Deployment,
        to: DeploymentStatus,
    ) -> Result<(), DeployError> {
        if deployment.advance(to, now())? {
            self.inner.store.save_deployment(deployment).await?;
            self.publish(deployment);
        }
        Ok(())
    }

    fn spawn_run(&self, deployment: Deployment) {
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            let stopping = this.inner.stopping.clone();
            let id = deployment.id.clone();
            let leased = deployment.clone();
            tokio::select! {
                () = this.run(deployment) => {}
                // Left as it is, to resume at the next start or on another
                // daemon, which the released lease lets in at once.
                () = stopping.cancelled() => {}
                () = this.keep_lease(id.clone()) => {
                    tracing::warn!(deployment = %id, "another daemon took this deployment over; stopping here");
                    return;
                }
            }
            this.release(&leased).await;
        });
    }

    /// Runs a deployment's steps to the end, rolling back on failure.
    async fn run(&self, mut deployment: Deployment) {
        let _guard = self.inner.locks.lock(deployment.name.as_str()).await;
        let id = deployment.id.clone();
        let result = self.run_steps(&mut deployment).await;
        let failure = match result {
            Ok(()) => return,
            // The store is down: nothing can be recorded, so leave the row
            // as it is; the next start resumes the deployment.
            Err(DeployError::Store(e)) => {
                tracing::error!(deployment = %id, error = %e, "cannot record progress; the deployment resumes at the next start");
                return;
            }
            Err(e) => e,
        };
        tracing::warn!(deployment = %id, stack = %deployment.name, error = %failure, "deployment failed; rolling back");
        let mut reason = failure.to_string();
        if let Err(e) = self.inner.engine.remove_stack(&deployment.name).await {
            tracing::error!(deployment = %id, error = %e, "rollback incomplete; the orphan sweep will finish it");
            reason.push_str(&format!(
                " (clean-up is incomplete and will be retried: {e})"
            ));
        }
        self.remember_endpoint(&deployment.name, None);
        let recorded = match deployment.fail(reason, now()) {
            Ok(()) => self
                .inner
                .store
                .save_deployment(&deployment)
                .await
                .map_err(DeployError::from),
            Err(e) => Err(e.into()),
        };
        match recorded {
            Ok(_) => self.publish(&deployment),
            Err(e) => tracing::error!(deployment = %id, error = %e, "cannot record the failure"),
        }
    }

    async fn run_steps(&self, deployment: &mut Deployment) -> Result<(), DeployError> {
        let engine = &self.inner.engine;
        let spec = self.spec_for(deployment);
        self.advance(deployment, DeploymentStatus::CreatingProject)
            .await?;
        engine.ensure_project(&spec).await?;
        self.advance(deployment, DeploymentStatus::CreatingApplication)
            .await?;
        engine.ensure_application(&spec).await?;
        self.advance(deployment, DeploymentStatus::Deploying)
            .await?;
        let endpoint = engine
            .deploy(&spec, self.inner.config.deploy_timeout)
            .await?;
        tracing::info!(deployment = %deployment.id, stack = %deployment.name, %endpoint, "stack answers");
        self.remember_endpoint(&deployment.name, Some(endpoint));
        self.forget_tracker(&deployment.name);
        let running = HealthReport {
            health: StackHealth::Running,
            ..HealthReport::default()
        };
        self.inner
            .store
            .set_health(&deployment.id, &running, now())
            .await?;
        deployment.health = running;
        self.advance(deployment, DeploymentStatus::Completed).await
    }

    /// Takes a completed (or half-removed) stack down and records it removed.
    /// The caller holds the name's lock.
    async fn remove(&self, deployment: &mut Deployment) -> Result<(), DeployError> {
        if deployment.status == DeploymentStatus::Completed {
            self.advance(deployment, DeploymentStatus::Removing).await?;
        }
        self.remember_endpoint(&deployment.name, None);
        self.forget_tracker(&deployment.name);
        let removed = self.inner.engine.remove_stack(&deployment.name).await?;
        tracing::info!(stack = %deployment.name, resources = removed.len(), "stack removed");
        self.advance(deployment, DeploymentStatus::Removed).await
    }
}
