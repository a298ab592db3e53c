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

#[tokio::test]
async fn each_kind_is_answered_and_the_waiting_call_gets_that_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = Questions::new(store.clone(), EventBus::new(64), Duration::from_secs(60));
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

#[tokio::test]
async fn bad_answers_and_other_peoples_questions_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = Questions::new(store.clone(), EventBus::new(64), Duration::from_secs(60));
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

#[tokio::test]
async fn nobody_answering_times_out_and_a_stopped_agent_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = Questions::new(store.clone(), EventBus::new(64), Duration::from_secs(60));
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

#[tokio::test]
async fn ten_concurrent_questions_from_three_agents_each_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = Questions::new(store.clone(), EventBus::new(256), Duration::from_secs(60));
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

#[tokio::test]
async fn an_agent_that_ends_cancels_its_questions_and_a_lapsed_question_is_not_offered() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let bus = EventBus::new(64);
    let questions = Questions::new(store.clone(), bus.clone(), Duration::from_secs(60));
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

#[tokio::test]
async fn an_answer_is_written_once_and_never_to_an_ended_agents_question() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let questions = Questions::new(store.clone(), EventBus::new(64), Duration::from_secs(60));
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

    // The agent ended with nobody waiting: its question is not answered
    // but settled as cancelled, and the answer refused saying so.
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
