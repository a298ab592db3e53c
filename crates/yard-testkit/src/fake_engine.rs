//! A fake backend, in memory: no Docker, no network. It keeps the stacks'
//! parts (project, application, whether it runs) in a map and obeys the
//! [`Engine`] contract (idempotent steps that adopt what exists, complete
//! and repeatable removal), so the deployer's rollback, resume, sweep,
//! healing and shutdown can be tested in seconds. Faults are injected on
//! purpose: fail the Nth call of a step, hang a step until released, lose
//! a stack's application behind the yard's back, or be unreachable.
//!
//! It is a fake, not a backend: endpoints point at `fake.invalid`, and the
//! probe believes whatever the map says.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{Notify, broadcast};
use tokio_stream::wrappers::BroadcastStream;
use yard_core::StackName;
use yard_engine::{
    ContainerChange, Endpoint, Engine, EngineError, ResourceKind, StackEvent, StackResource,
    StackSpec, StackState,
};

/// A step of the engine contract, for fault injection and counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    Project,
    Application,
    Deploy,
    Remove,
}

#[derive(Debug, Clone, Default)]
struct FakeStack {
    project: bool,
    application: Option<String>,
    running: bool,
    port: u16,
}

#[derive(Debug, Default)]
struct State {
    stacks: BTreeMap<StackName, FakeStack>,
    calls: HashMap<Step, usize>,
    /// Step → which calls of it fail (1-based).
    failing: HashMap<Step, Vec<usize>>,
    hanging: Vec<Step>,
    unreachable: bool,
    next_id: u64,
}

/// The fake backend; cheap to clone (clones share their state).
#[derive(Debug, Clone)]
pub struct FakeEngine {
    state: Arc<Mutex<State>>,
    released: Arc<Notify>,
    events: broadcast::Sender<StackEvent>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeEngine {
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            released: Arc::new(Notify::new()),
            events: broadcast::channel(256).0,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `nth` call (1-based, counted from the start) of `step` fails.
    pub fn fail_on(&self, step: Step, nth: usize) {
        self.state().failing.entry(step).or_default().push(nth);
    }

    /// Every call of `step` from now on waits until [`FakeEngine::release`].
    pub fn hang_on(&self, step: Step) {
        self.state().hanging.push(step);
    }

    /// Lets hanging calls go on, and stops hanging.
    pub fn release(&self) {
        self.state().hanging.clear();
        self.released.notify_waiters();
    }

    /// The engine stops (or starts again) answering at all.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.state().unreachable = unreachable;
    }

    /// How many times `step` was called.
    pub fn calls(&self, step: Step) -> usize {
        self.state().calls.get(&step).copied().unwrap_or(0)
    }

    /// The stack's application dies behind the yard's back, as a crash
    /// with `code` would; announced like an engine's event.
    pub fn crash(&self, name: &str, code: i64) {
        let name = StackName::from_trusted(name);
        let id = {
            let mut state = self.state();
            let Some(stack) = state.stacks.get_mut(&name) else {
                return;
            };
            stack.running = false;
            stack.application.clone().unwrap_or_default()
        };
        let _ = self.events.send(StackEvent::Container {
            stack: name,
            id,
            change: ContainerChange::Died { code },
        });
    }

    /// The stack's application is removed behind the yard's back.
    pub fn lose_application(&self, name: &str) {
        let name = StackName::from_trusted(name);
        let id = {
            let mut state = self.state();
            let Some(stack) = state.stacks.get_mut(&name) else {
                return;
            };
            stack.running = false;
            stack.application.take().unwrap_or_default()
        };
        let _ = self.events.send(StackEvent::Container {
            stack: name,
            id,
            change: ContainerChange::Removed,
        });
    }

    /// Parts of a stack the store knows nothing of, as a crash between
    /// making a resource and recording it would leave.
    pub fn plant_orphan(&self, name: &str) {
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("orphan{}", state.next_id);
        state.stacks.insert(
            StackName::from_trusted(name),
            FakeStack {
                project: true,
                application: Some(id),
                running: true,
                port: 1,
            },
        );
    }

    /// Everything the fake holds, as the engine would list it.
    pub fn resources(&self) -> Vec<StackResource> {
        list(&self.state())
    }

    /// Whether the stack `name` runs now.
    pub fn is_running(&self, name: &str) -> bool {
        self.state()
            .stacks
            .get(&StackName::from_trusted(name))
            .is_some_and(|s| s.running)
    }

    /// Counts the call, then fails, hangs or goes on as injected.
    async fn enter(&self, step: Step) -> Result<(), EngineError> {
        let (fail, hang) = {
            let mut state = self.state();
            if state.unreachable {
                return Err(EngineError::Unavailable(
                    "the fake engine is switched off".into(),
                ));
            }
            let count = state.calls.entry(step).or_default();
            *count += 1;
            let count = *count;
            let fail = state
                .failing
                .get(&step)
                .is_some_and(|calls| calls.contains(&count));
            (fail, state.hanging.contains(&step))
        };
        if hang {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release in between is seen.
            released.as_mut().enable();
            if self.state().hanging.contains(&step) {
                released.await;
            }
        }
        if fail {
            return Err(EngineError::Backend {
                operation: "a step of the fake engine",
                message: format!("injected failure at {step:?}"),
            });
        }
        Ok(())
    }

    fn endpoint_of(stack: &FakeStack) -> Endpoint {
        Endpoint::http(format!("fake.invalid:{}", stack.port))
    }
}

fn list(state: &State) -> Vec<StackResource> {
    let mut found = Vec::new();
    for (name, stack) in &state.stacks {
        if let Some(id) = &stack.application {
            found.push(StackResource {
                kind: ResourceKind::Application,
                name: id.clone(),
                stack: name.clone(),
            });
        }
        if stack.project {
            found.push(StackResource {
                kind: ResourceKind::Project,
                name: format!("project-{name}"),
                stack: name.clone(),
            });
        }
    }
    found
}

#[async_trait]
impl Engine for FakeEngine {
    fn backend(&self) -> &'static str {
        "fake"
    }

    async fn ping(&self) -> Result<(), EngineError> {
        if self.state().unreachable {
            return Err(EngineError::Unavailable(
                "the fake engine is switched off".into(),
            ));
        }
        Ok(())
    }

    async fn ensure_project(&self, spec: &StackSpec) -> Result<(), EngineError> {
        self.enter(Step::Project).await?;
        self.state()
            .stacks
            .entry(spec.name.clone())
            .or_default()
            .project = true;
        Ok(())
    }

    async fn ensure_application(&self, spec: &StackSpec) -> Result<(), EngineError> {
        self.enter(Step::Application).await?;
        if spec.image.contains("missing") {
            return Err(EngineError::ImageNotFound {
                image: spec.image.clone(),
            });
        }
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("app{}", state.next_id);
        let port = 20000 + u16::try_from(state.next_id % 10000).unwrap_or(0);
        let stack = state.stacks.entry(spec.name.clone()).or_default();
        if stack.application.is_none() {
            stack.application = Some(id);
            stack.port = port;
        }
        Ok(())
    }

    async fn deploy(&self, spec: &StackSpec, _timeout: Duration) -> Result<Endpoint, EngineError> {
        self.enter(Step::Deploy).await?;
        if spec.image.contains("crash") {
            return Err(EngineError::NotReady(
                "the container exited with code 3".into(),
            ));
        }
        let mut state = self.state();
        let stack = state
            .stacks
            .get_mut(&spec.name)
            .filter(|s| s.application.is_some())
            .ok_or_else(|| EngineError::NotReady("the application vanished".into()))?;
        stack.running = true;
        let endpoint = Self::endpoint_of(stack);
        let id = stack.application.clone().unwrap_or_default();
        drop(state);
        let _ = self.events.send(StackEvent::Container {
            stack: spec.name.clone(),
            id,
            change: ContainerChange::Started,
        });
        Ok(endpoint)
    }

    async fn endpoint(&self, name: &StackName) -> Result<Option<Endpoint>, EngineError> {
        Ok(self
            .state()
            .stacks
            .get(name)
            .filter(|s| s.running)
            .map(Self::endpoint_of))
    }

    async fn remove_stack(&self, name: &StackName) -> Result<Vec<StackResource>, EngineError> {
        self.enter(Step::Remove).await?;
        let mut state = self.state();
        let Some(stack) = state.stacks.remove(name) else {
            return Ok(Vec::new());
        };
        let mut one = State::default();
        one.stacks.insert(name.clone(), stack);
        Ok(list(&one))
    }

    async fn remove_application(&self, name: &StackName) -> Result<Option<String>, EngineError> {
        let mut state = self.state();
        Ok(state.stacks.get_mut(name).and_then(|stack| {
            stack.running = false;
            stack.application.take()
        }))
    }

    async fn stack_resources(&self) -> Result<Vec<StackResource>, EngineError> {
        self.ping().await?;
        Ok(self.resources())
    }

    async fn stack_states(&self) -> Result<Vec<(StackName, StackState)>, EngineError> {
        self.ping().await?;
        Ok(self
            .state()
            .stacks
            .iter()
            .filter_map(|(name, stack)| {
                let id = stack.application.clone()?;
                Some((
                    name.clone(),
                    if stack.running {
                        StackState::Running {
                            id,
                            healthy: None,
                            attached: true,
                            endpoint: Some(Self::endpoint_of(stack)),
                        }
                    } else {
                        StackState::Exited {
                            id,
                            code: 3,
                            oom: false,
                            finished: None,
                        }
                    },
                ))
            })
            .collect())
    }

    fn stack_events(&self) -> BoxStream<'static, Result<StackEvent, EngineError>> {
        BroadcastStream::new(self.events.subscribe())
            .filter_map(|event| async move { event.ok().map(Ok) })
            .boxed()
    }

    async fn probe(&self, endpoint: &Endpoint) -> bool {
        let state = self.state();
        state
            .stacks
            .values()
            .any(|s| s.running && Self::endpoint_of(s) == *endpoint)
    }
}
