//! Questions for a person, on a real store and no engine: each kind is
//! answered and the waiting call gets exactly that answer; deadlines,
//! cancellation, a restart in the middle, concurrent askers, and answers
//! that do not fit or are not the answerer's to give.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use yard_core::{
    Agent, AgentId, AgentStatus, Owner, Person, QuestionKind, QuestionOutcome, Role, Timestamp,
};
use yard_services::{EventBus, NewQuestion, Questions, QuestionsError};
use yard_store::Store;

fn owner(name: &str) -> Owner {
    Owner {
        id: format!("o-{name}"),
        name: name.to_owned(),
    }
}

fn person(name: &str, role: Role) -> Person {
    Person {
        owner: owner(name),
        role,
    }
}

/// An agent of `name`'s, running, recorded in `store`.
async fn agent_in(store: &Store, name: &str) -> Agent {
    let agent = Agent {
        id: AgentId::generate(),
        instance: "test".into(),
        owner: Some(owner(name)),
        parent: None,
        repo: "/repo".into(),
        base_ref: "main".into(),
        base_commit: "0".repeat(40),
        task: "work".into(),
        image: "img".into(),
        status: AgentStatus::Running,
        exit_code: None,
        message: None,
        checkout: "/checkout".into(),
        head_commit: None,
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    };
    store
        .insert_agent(&agent, &format!("hash-{}", agent.id))
        .await
        .unwrap();
    agent
}

fn asked(kind: QuestionKind, timeout_seconds: Option<i64>) -> NewQuestion {
    NewQuestion {
        kind,
        message: "may I?".into(),
        context: Some("Bash: rm -rf build".into()),
        timeout_seconds,
        origin: None,
    }
}

async fn store(dir: &tempfile::TempDir) -> Store {
    Store::open(&Store::sqlite_url(dir.path())).await.unwrap()
}

fn never() -> std::future::Pending<()> {
    std::future::pending()
}

/// What decides a question's outcome: the store's conditional write (a
/// store several daemons share), or this daemon's memory with an answer
/// log (a store it alone writes).
#[derive(Debug, Clone, Copy)]
enum Decides {
    InStore,
    InMemory,
}

impl Decides {
    async fn questions(self, dir: &tempfile::TempDir, store: &Store, bus: EventBus) -> Questions {
        let questions = Questions::new(store.clone(), bus, Duration::from_secs(60));
        match self {
            Self::InStore => questions,
            Self::InMemory => questions
                .with_answer_log(&dir.path().join("answers.log"))
                .await
                .unwrap(),
        }
    }
}

/// Runs test `name` once for each way of deciding.
macro_rules! each_way {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn the_store_decides() {
                super::$name(super::Decides::InStore).await;
            }

            #[tokio::test]
            async fn memory_decides() {
                super::$name(super::Decides::InMemory).await;
            }
        }
    )*};
}

each_way!(
    each_kind_is_answered_and_the_waiting_call_gets_that_answer,
    bad_answers_and_other_peoples_questions_are_refused_and_change_nothing,
    nobody_answering_times_out_and_a_stopped_agent_cancels,
    ten_concurrent_questions_from_three_agents_each_get_their_own_answer,
    an_agent_that_ends_cancels_its_questions_and_a_lapsed_question_is_not_offered,
    an_answer_is_written_once_and_never_to_an_ended_agents_question,
);

async fn each_kind_is_answered_and_the_waiting_call_gets_that_answer(decides: Decides) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = decides.questions(&dir, &store, EventBus::new(64)).await;
    let alice = person("alice", Role::User);
    let agent = agent_in(&store, "alice").await;
    let select = QuestionKind::Select {
        options: vec!["Red".into(), "Blue".into()],
    };
    for (kind, answer, expected) in [
        (QuestionKind::Confirm, "Yes", "yes"),
        (QuestionKind::Permission, "deny", "deny"),
        (select, "Blue", "Blue"),
        (QuestionKind::Text, "use the cache", "use the cache"),
    ] {
        let question = questions.ask(&agent, asked(kind, None)).await.unwrap();
        let waiting = {
            let questions = questions.clone();
            let id = question.id.clone();
            tokio::spawn(async move { questions.wait(&id, never()).await })
        };
        let pending = questions.pending(&alice).await.unwrap();
        assert_eq!(pending.len(), 1);
        questions
            .answer(&alice, &question.id, answer, Some("careful".into()))
            .await
            .unwrap();
        let outcome = waiting.await.unwrap().unwrap();
        assert_eq!(
            outcome,
            QuestionOutcome::Answered {
                answer: expected.into(),
                by: "alice".into(),
                reason: Some("careful".into()),
            }
        );
    }
}

async fn bad_answers_and_other_peoples_questions_are_refused_and_change_nothing(decides: Decides) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = decides.questions(&dir, &store, EventBus::new(64)).await;
    let (alice, bob) = (person("alice", Role::User), person("bob", Role::User));
    let admin = person("root", Role::Admin);
    let select = QuestionKind::Select {
        options: vec!["a".into(), "b".into()],
    };
    let question = questions
        .ask(&agent_in(&store, "alice").await, asked(select, None))
        .await
        .unwrap();
    let refused = |r: Result<_, QuestionsError>| r.unwrap_err().to_string();
    let said = refused(questions.answer(&alice, &question.id, "c", None).await);
    assert!(said.contains("a, b"), "{said}");
    let said = refused(questions.answer(&bob, &question.id, "a", None).await);
    assert!(said.contains("no question"), "bob learns nothing: {said}");
    assert!(questions.pending(&bob).await.unwrap().is_empty());
    let said = refused(questions.answer(&alice, "no-such-id", "a", None).await);
    assert!(said.contains("no question"), "{said}");
    // Still pending after all that; an admin may answer it, once.
    assert_eq!(questions.pending(&admin).await.unwrap().len(), 1);
    questions
        .answer(&admin, &question.id, "a", None)
        .await
        .unwrap();
    let said = refused(questions.answer(&alice, &question.id, "b", None).await);
    assert!(said.contains("already answered"), "{said}");
    for bad in [
        asked(QuestionKind::Confirm, Some(0)),
        asked(QuestionKind::Confirm, Some(-1)),
        asked(QuestionKind::Confirm, Some(86_401)),
        asked(
            QuestionKind::Select {
                options: Vec::new(),
            },
            None,
        ),
        asked(
            QuestionKind::Select {
                options: (0..200).map(|i| i.to_string()).collect(),
            },
            None,
        ),
        NewQuestion {
            message: "x".repeat(1 << 20),
            ..asked(QuestionKind::Text, None)
        },
    ] {
        assert!(matches!(
            questions.ask(&agent_in(&store, "alice").await, bad).await,
            Err(QuestionsError::Invalid(_))
        ));
    }
    assert!(
        questions.pending(&admin).await.unwrap().is_empty(),
        "nothing stored"
    );
}

async fn nobody_answering_times_out_and_a_stopped_agent_cancels(decides: Decides) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = decides.questions(&dir, &store, EventBus::new(64)).await;
    let agent = agent_in(&store, "alice").await;
    let question = questions
        .ask(&agent, asked(QuestionKind::Confirm, Some(1)))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let outcome = questions.wait(&question.id, never()).await.unwrap();
    assert_eq!(outcome, QuestionOutcome::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(3));

    let question = questions
        .ask(&agent, asked(QuestionKind::Confirm, None))
        .await
        .unwrap();
    let stop = tokio::time::sleep(Duration::from_millis(100));
    assert_eq!(
        questions.wait(&question.id, stop).await.unwrap(),
        QuestionOutcome::Cancelled
    );
    let question = questions
        .ask(&agent, asked(QuestionKind::Text, None))
        .await
        .unwrap();
    assert_eq!(questions.cancel_agent(&agent.id).await.unwrap(), 1);
    assert_eq!(
        questions.wait(&question.id, never()).await.unwrap(),
        QuestionOutcome::Cancelled
    );
}

#[tokio::test]
async fn a_question_outlives_a_restart_and_its_answer_reaches_the_caller_that_waits_again() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_in(&store(&dir).await, "alice").await;
    let id = {
        let before = Questions::new(
            store(&dir).await,
            EventBus::new(64),
            Duration::from_secs(60),
        );
        before
            .ask(&agent, asked(QuestionKind::Confirm, None))
            .await
            .unwrap()
            .id
    };
    // A new yard on the same store: the question is still pending, and
    // the caller waits on it again by its id.
    let after = Questions::new(
        store(&dir).await,
        EventBus::new(64),
        Duration::from_secs(60),
    );
    let alice = person("alice", Role::User);
    assert_eq!(after.pending(&alice).await.unwrap()[0].id, id);
    let waiting = {
        let after = after.clone();
        let id = id.clone();
        tokio::spawn(async move { after.wait(&id, never()).await })
    };
    // Answered through a third yard (another daemon): seen by looking.
    let elsewhere = Questions::new(
        store(&dir).await,
        EventBus::new(64),
        Duration::from_secs(60),
    );
    elsewhere.answer(&alice, &id, "no", None).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, QuestionOutcome::Answered { answer, .. } if answer == "no"));
}

async fn ten_concurrent_questions_from_three_agents_each_get_their_own_answer(decides: Decides) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = decides.questions(&dir, &store, EventBus::new(256)).await;
    let admin = person("root", Role::Admin);
    let agents = [
        agent_in(&store, "a").await,
        agent_in(&store, "b").await,
        agent_in(&store, "c").await,
    ];
    let mut waiting = Vec::new();
    for i in 0..10 {
        let agent = &agents[i % 3];
        let question = questions
            .ask(agent, asked(QuestionKind::Text, None))
            .await
            .unwrap();
        let questions = questions.clone();
        waiting.push((
            i,
            question.id.clone(),
            tokio::spawn(async move { questions.wait(&question.id, never()).await }),
        ));
    }
    // Answered in reverse order, each with its own text.
    for (i, id, _) in waiting.iter().rev() {
        questions
            .answer(&admin, id, &format!("answer {i}"), None)
            .await
            .unwrap();
    }
    for (i, _, handle) in waiting {
        let outcome = handle.await.unwrap().unwrap();
        assert!(
            matches!(&outcome, QuestionOutcome::Answered { answer, .. } if *answer == format!("answer {i}")),
            "{i}: {outcome:?}"
        );
    }
}

async fn an_agent_that_ends_cancels_its_questions_and_a_lapsed_question_is_not_offered(
    decides: Decides,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus = EventBus::new(64);
    let questions = decides.questions(&dir, &store, bus.clone()).await;
    let admin = person("root", Role::Admin);
    let agent = agent_in(&store, "alice").await;
    let question = questions
        .ask(&agent, asked(QuestionKind::Confirm, None))
        .await
        .unwrap();
    let waiting = {
        let questions = questions.clone();
        let id = question.id.clone();
        tokio::spawn(async move { questions.wait(&id, never()).await })
    };
    // The orchestrator's way of ending an agent: a stored transition, then
    // the agent's new state on the bus.
    store
        .transition_agent(
            &agent.id,
            yard_store::AgentTransition {
                from: &AgentStatus::LIVE,
                to: AgentStatus::Stopped,
                exit_code: None,
                message: None,
                now: Timestamp(1),
            },
        )
        .await
        .unwrap();
    bus.publish(yard_services::YardEvent::Agent(
        store.agent(&agent.id).await.unwrap().unwrap(),
    ));
    let outcome = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(outcome, QuestionOutcome::Cancelled);

    // Nobody waits on this one; once its deadline passes it is not offered
    // and takes no answer.
    let other = agent_in(&store, "alice").await;
    let lapsed = questions
        .ask(&other, asked(QuestionKind::Confirm, Some(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(questions.pending(&admin).await.unwrap().is_empty());
    let said = questions
        .answer(&admin, &lapsed.id, "yes", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(said.contains("timed_out"), "{said}");
}

async fn an_answer_is_written_once_and_never_to_an_ended_agents_question(decides: Decides) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus = EventBus::new(64);
    let questions = decides.questions(&dir, &store, bus.clone()).await;
    let alice = person("alice", Role::User);
    let agent = agent_in(&store, "alice").await;

    let question = questions
        .ask(&agent, asked(QuestionKind::Confirm, None))
        .await
        .unwrap();
    assert_eq!(
        question.agent_task.as_deref(),
        Some("work"),
        "its task, kept"
    );
    let bob = person("bob", Role::User);
    assert!(matches!(
        questions.answer(&bob, &question.id, "yes", None).await,
        Err(QuestionsError::NoSuchQuestion(_))
    ));
    questions
        .answer(&alice, &question.id, "yes", None)
        .await
        .unwrap();
    assert!(matches!(
        questions.answer(&alice, &question.id, "no", None).await,
        Err(QuestionsError::Settled {
            outcome: "answered",
            ..
        })
    ));

    // The agent ended with nobody waiting (a stored transition, then the
    // agent's new state on the bus): its question is not answered but
    // settled as cancelled, and the answer refused saying so.
    let question = questions
        .ask(&agent, asked(QuestionKind::Confirm, None))
        .await
        .unwrap();
    let change = yard_store::AgentTransition {
        from: &AgentStatus::LIVE,
        to: AgentStatus::Stopped,
        exit_code: None,
        message: None,
        now: Timestamp(1),
    };
    assert!(store.transition_agent(&agent.id, change).await.unwrap());
    bus.publish(yard_services::YardEvent::Agent(
        store.agent(&agent.id).await.unwrap().unwrap(),
    ));
    // Heard on the bus by whatever decides in memory.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(
        questions.answer(&alice, &question.id, "yes", None).await,
        Err(QuestionsError::Settled {
            outcome: "cancelled",
            ..
        })
    ));
    assert_eq!(
        store.question(&question.id).await.unwrap().unwrap().outcome,
        QuestionOutcome::Cancelled
    );
}

#[tokio::test]
async fn an_answer_decided_in_memory_counts_at_once_and_reaches_the_store_soon_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = Decides::InMemory
        .questions(&dir, &store, EventBus::new(64))
        .await;
    let alice = person("alice", Role::User);
    let agent = agent_in(&store, "alice").await;
    let question = questions
        .ask(&agent, asked(QuestionKind::Confirm, None))
        .await
        .unwrap();
    questions
        .answer(&alice, &question.id, "yes", None)
        .await
        .unwrap();
    // Whether or not the store has it yet, nothing sees it pending.
    assert!(questions.pending(&alice).await.unwrap().is_empty());
    assert!(matches!(
        questions.answer(&alice, &question.id, "no", None).await,
        Err(QuestionsError::Settled {
            outcome: "answered",
            ..
        })
    ));
    assert_eq!(
        questions
            .wait(&question.id, never())
            .await
            .unwrap()
            .as_str(),
        "answered"
    );
    // Ending the agent writes the answer first; it is not cancelled.
    assert_eq!(questions.cancel_agent(&agent.id).await.unwrap(), 0);
    let stored = store.question(&question.id).await.unwrap().unwrap();
    assert!(matches!(stored.outcome, QuestionOutcome::Answered { answer, .. } if answer == "yes"));

    // Left alone, the writer puts the next one in the store shortly.
    let agent = agent_in(&store, "alice").await;
    let question = questions
        .ask(&agent, asked(QuestionKind::Text, None))
        .await
        .unwrap();
    questions
        .answer(&alice, &question.id, "use the cache", None)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store
        .question(&question.id)
        .await
        .unwrap()
        .unwrap()
        .outcome
        .is_pending()
    {
        assert!(tokio::time::Instant::now() < deadline, "never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = std::fs::read_to_string(dir.path().join("answers.log")).unwrap();
    assert_eq!(log, "", "the log empties once the store has every answer");
}

#[tokio::test]
async fn an_answer_logged_before_a_crash_reaches_the_store_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_in(&store(&dir).await, "alice").await;
    // A daemon in a runtime of its own, gone (as in a crash) right after
    // the answer: its writer never ran.
    let id = {
        let dir = dir.path().to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let store = Store::open(&Store::sqlite_url(&dir)).await.unwrap();
                let questions = Questions::new(store, EventBus::new(64), Duration::from_secs(60))
                    .with_answer_log(&dir.join("answers.log"))
                    .await
                    .unwrap();
                let question = questions
                    .ask(&agent, asked(QuestionKind::Confirm, None))
                    .await
                    .unwrap();
                questions
                    .answer(
                        &person("alice", Role::User),
                        &question.id,
                        "no",
                        Some("not today".into()),
                    )
                    .await
                    .unwrap();
                question.id
            })
        })
        .join()
        .unwrap()
    };
    let store = store(&dir).await;
    assert!(
        store
            .question(&id)
            .await
            .unwrap()
            .unwrap()
            .outcome
            .is_pending(),
        "the store never had it"
    );
    let _next = Decides::InMemory
        .questions(&dir, &store, EventBus::new(64))
        .await;
    assert_eq!(
        store.question(&id).await.unwrap().unwrap().outcome,
        QuestionOutcome::Answered {
            answer: "no".into(),
            by: "alice".into(),
            reason: Some("not today".into()),
        }
    );
}
