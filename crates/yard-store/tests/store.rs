//! The store against both of its databases: a SQLite file and a real
//! PostgreSQL server. Every test runs once per backend.

#![allow(clippy::unwrap_used)]

use yard_core::{Deployment, DeploymentStatus, StackName, Timestamp};
use yard_core::{Owner, Role};
use yard_core::{SessionRecord, TokenRecord};
use yard_store::{Store, StoreError};

/// Runs `check` on a fresh SQLite store, then on a fresh PostgreSQL one.
async fn on_each_backend<F, Fut>(check: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
    check(sqlite).await;
    let postgres = Store::open(&yard_testkit::fresh_postgres_url().await)
        .await
        .unwrap();
    check(postgres).await;
}

fn deployment(name: &str) -> Deployment {
    Deployment::new(
        StackName::from_trusted(name),
        format!("http://{name}.localhost:3000"),
        "img:1".into(),
        Timestamp(1_000),
    )
}

#[tokio::test]
async fn deployments_round_trip() {
    on_each_backend(|store| async move {
        let mut d = deployment("alice");
        store.insert_deployment(&d).await.unwrap();
        assert_eq!(
            store.deployment(d.id.as_str()).await.unwrap().as_ref(),
            Some(&d)
        );

        d.advance(DeploymentStatus::CreatingProject, Timestamp(2_000))
            .unwrap();
        assert!(store.save_deployment(&d).await.unwrap());
        d.fail("engine said no", Timestamp(3_000)).unwrap();
        assert!(store.save_deployment(&d).await.unwrap());
        let stored = store.deployment(d.id.as_str()).await.unwrap().unwrap();
        assert_eq!(stored, d);
        assert_eq!(stored.message.as_deref(), Some("engine said no"));
        assert!(store.deployment("no-such-id").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn an_older_write_never_overwrites_a_newer_one() {
    on_each_backend(|store| async move {
        let mut d = deployment("bob");
        store.insert_deployment(&d).await.unwrap();
        let stale = d.clone();
        d.advance(DeploymentStatus::CreatingProject, Timestamp(2_000))
            .unwrap();
        assert!(store.save_deployment(&d).await.unwrap());
        assert!(!store.save_deployment(&stale).await.unwrap());
        let stored = store.deployment(d.id.as_str()).await.unwrap().unwrap();
        assert_eq!(stored.status, DeploymentStatus::CreatingProject);
    })
    .await;
}

#[tokio::test]
async fn only_one_live_deployment_holds_a_name() {
    on_each_backend(|store| async move {
        let mut first = deployment("carol");
        store.insert_deployment(&first).await.unwrap();
        let second = deployment("carol");
        assert!(matches!(
            store.insert_deployment(&second).await,
            Err(StoreError::NameTaken(name)) if name == "carol"
        ));
        assert_eq!(store.live_deployments().await.unwrap().len(), 1);
        assert_eq!(store.active_deployments().await.unwrap().len(), 1);
        assert_eq!(store.count_active().await.unwrap(), 1);

        // A failed deployment releases the name.
        first.fail("boom", Timestamp(2_000)).unwrap();
        store.save_deployment(&first).await.unwrap();
        assert!(store.live_deployment(&first.name).await.unwrap().is_none());
        store.insert_deployment(&second).await.unwrap();
        assert_eq!(
            store
                .live_deployment(&second.name)
                .await
                .unwrap()
                .map(|d| d.id),
            Some(second.id.clone())
        );
        assert_eq!(store.deployments(10).await.unwrap().len(), 2);
        assert_eq!(store.deployments(1).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn concurrent_claims_on_one_name_have_one_winner() {
    on_each_backend(|store| async move {
        let attempts = (0..10).map(|_| {
            let store = store.clone();
            async move { store.insert_deployment(&deployment("dave")).await }
        });
        let results = futures::future::join_all(attempts).await;
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(StoreError::NameTaken(_))))
        );
    })
    .await;
}

#[tokio::test]
async fn tokens_are_found_by_hash_until_revoked() {
    on_each_backend(|store| async move {
        let token = TokenRecord {
            id: "t1".into(),
            name: "admin".into(),
            role: Role::Admin,
            owner_id: "t1".into(),
            created_at: Timestamp(1),
            revoked_at: None,
        };
        store.insert_token(&token, "hash-1").await.unwrap();
        assert_eq!(store.active_token("hash-1").await.unwrap(), Some(token));
        assert_eq!(store.active_token("hash-2").await.unwrap(), None);
        assert!(
            store
                .revoke_token_named("admin", Timestamp(2))
                .await
                .unwrap()
        );
        assert_eq!(store.active_token("hash-1").await.unwrap(), None);
        assert!(
            !store
                .revoke_token_named("admin", Timestamp(3))
                .await
                .unwrap()
        );
    })
    .await;
}

fn token(id: &str, name: &str) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        name: name.into(),
        role: Role::User,
        owner_id: id.into(),
        created_at: Timestamp(1),
        revoked_at: None,
    }
}

#[tokio::test]
async fn one_active_token_per_name_found_by_id_or_name() {
    on_each_backend(|store| async move {
        store
            .insert_token(&token("t1", "alice"), "h1")
            .await
            .unwrap();
        for taken in ["alice", "Alice", "ALICE"] {
            assert!(matches!(
                store.insert_token(&token("t2", taken), "h2").await,
                Err(StoreError::TokenNameTaken(name)) if name == taken
            ));
        }
        assert_eq!(
            store.active_token_by_key("t1").await.unwrap().unwrap().name,
            "alice"
        );
        assert_eq!(
            store
                .active_token_by_key("alice")
                .await
                .unwrap()
                .unwrap()
                .id,
            "t1"
        );
        assert_eq!(
            store
                .active_token_by_key("ALICE")
                .await
                .unwrap()
                .unwrap()
                .id,
            "t1"
        );
        assert_eq!(store.active_token_by_key("bob").await.unwrap(), None);

        assert!(store.revoke_token("t1", Timestamp(2)).await.unwrap());
        assert!(!store.revoke_token("t1", Timestamp(3)).await.unwrap());
        assert_eq!(store.active_token_by_key("t1").await.unwrap(), None);
        // The name is free again once its token is revoked.
        store
            .insert_token(&token("t3", "alice"), "h3")
            .await
            .unwrap();
        let names: Vec<String> = store
            .active_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(names, ["t3"]);
        // Revoked tokens are still found for a take-over: the newest first.
        assert_eq!(store.token_by_key("alice").await.unwrap().unwrap().id, "t3");
        assert_eq!(store.token_by_key("t1").await.unwrap().unwrap().id, "t1");
        assert_eq!(
            store.active_token_of_owner("t3").await.unwrap().unwrap().id,
            "t3"
        );
        assert_eq!(store.active_token_of_owner("t1").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn sessions_live_until_they_expire_or_their_token_goes() {
    on_each_backend(|store| async move {
        store
            .insert_token(&token("t1", "alice"), "h1")
            .await
            .unwrap();
        let session = |scope: &str, expires: i64| SessionRecord {
            token_id: "t1".into(),
            scope: scope.into(),
            csrf_token: "c".into(),
            created_at: Timestamp(10),
            expires_at: Timestamp(expires),
        };
        store
            .insert_session(&session("portal", 100), "s1")
            .await
            .unwrap();
        store
            .insert_session(&session("ticket:bob", 100), "s2")
            .await
            .unwrap();

        let (found, owner) = store
            .live_session("s1", "portal", Timestamp(50))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found, owner.name.as_str()),
            (session("portal", 100), "alice")
        );
        assert!(
            store
                .live_session("s1", "stack:bob", Timestamp(50))
                .await
                .unwrap()
                .is_none(),
            "scoped"
        );
        assert!(
            store
                .live_session("s1", "portal", Timestamp(100))
                .await
                .unwrap()
                .is_none(),
            "expired"
        );

        // A ticket is taken once.
        assert!(
            store
                .take_session("s2", "ticket:bob", Timestamp(50))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .take_session("s2", "ticket:bob", Timestamp(50))
                .await
                .unwrap()
                .is_none()
        );

        assert!(store.revoke_token("t1", Timestamp(60)).await.unwrap());
        assert!(
            store
                .live_session("s1", "portal", Timestamp(61))
                .await
                .unwrap()
                .is_none(),
            "revoked"
        );
        assert!(
            !store.delete_session("s1").await.unwrap(),
            "revoking ended it"
        );
    })
    .await;
}

#[tokio::test]
async fn opening_twice_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    let d = deployment("erin");
    Store::open(&url)
        .await
        .unwrap()
        .insert_deployment(&d)
        .await
        .unwrap();
    let reopened = Store::open(&url).await.unwrap();
    assert_eq!(reopened.deployment(d.id.as_str()).await.unwrap(), Some(d));
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error_without_the_password() {
    let err = Store::open("postgres://yard:hunter2@127.0.0.1:1/yard")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open the store"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

fn agent(id: &str, status: yard_core::AgentStatus) -> yard_core::Agent {
    yard_core::Agent {
        id: yard_core::AgentId::from_trusted(id),
        instance: "inst".into(),
        owner: Some(Owner {
            id: "o1".into(),
            name: "alice".into(),
        }),
        parent: None,
        repo: "/src/repo".into(),
        base_ref: "HEAD".into(),
        base_commit: "abc123".into(),
        task: "fix it".into(),
        image: "agent:1".into(),
        status,
        exit_code: None,
        message: None,
        checkout: format!("/data/checkouts/{id}"),
        head_commit: None,
        created_at: Timestamp(1),
        updated_at: Timestamp(1),
    }
}

#[tokio::test]
async fn agents_move_only_from_the_statuses_given() {
    use yard_core::AgentStatus::*;
    use yard_store::AgentTransition;
    on_each_backend(|store| async move {
        store
            .insert_token(&token("o1", "alice"), "h-o1")
            .await
            .unwrap();
        let a = agent("aaaa0001", Starting);
        store.insert_agent(&a, "hash-a").await.unwrap();
        store
            .insert_agent(&agent("aaaa0002", Running), "hash-b")
            .await
            .unwrap();
        assert_eq!(store.agent(&a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(
            store
                .live_agent_by_token_hash("hash-a")
                .await
                .unwrap()
                .map(|x| x.id),
            Some(a.id.clone())
        );
        assert_eq!(store.live_agent_by_token_hash("nope").await.unwrap(), None);
        // The credential dies with its owner's token, and comes back only
        // when a token takes over that owner.
        store.revoke_token("o1", Timestamp(2)).await.unwrap();
        assert_eq!(
            store.live_agent_by_token_hash("hash-a").await.unwrap(),
            None
        );
        let reissue = TokenRecord {
            owner_id: "o1".into(),
            ..token("o2", "alice")
        };
        store.insert_token(&reissue, "h-o2").await.unwrap();
        assert!(
            store
                .live_agent_by_token_hash("hash-a")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(store.live_agent_counts("inst", "o1").await.unwrap(), (2, 2));
        assert_eq!(
            store.live_agent_counts("inst", "other").await.unwrap(),
            (2, 0)
        );

        let to_running = AgentTransition {
            from: &[Starting],
            to: Running,
            exit_code: None,
            message: None,
            now: Timestamp(2),
        };
        assert!(
            store
                .transition_agent(&a.id, to_running.clone())
                .await
                .unwrap()
        );
        assert!(
            !store.transition_agent(&a.id, to_running).await.unwrap(),
            "already running"
        );
        let exited = AgentTransition {
            from: &[Starting, Running],
            to: Exited,
            exit_code: Some(0),
            message: None,
            now: Timestamp(3),
        };
        assert!(store.transition_agent(&a.id, exited).await.unwrap());
        let late_stop = AgentTransition {
            from: &[Starting, Running],
            to: Stopped,
            exit_code: None,
            message: Some("stopped".into()),
            now: Timestamp(4),
        };
        assert!(
            !store.transition_agent(&a.id, late_stop).await.unwrap(),
            "exactly one outcome"
        );
        let stored = store.agent(&a.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.exit_code, stored.message),
            (Exited, Some(0), None)
        );

        store
            .set_agent_head(&a.id, "def456", Timestamp(5))
            .await
            .unwrap();
        assert_eq!(
            store
                .agent(&a.id)
                .await
                .unwrap()
                .unwrap()
                .head_commit
                .as_deref(),
            Some("def456")
        );
        let live = store
            .agents_with_status("inst", &[Starting, Running])
            .await
            .unwrap();
        assert_eq!(
            live.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
            ["aaaa0002"]
        );
        assert!(
            store
                .agents_with_status("other", &[Running])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.agents(10).await.unwrap().len(), 2);
        assert_eq!(store.agents_of_owner("o1", 10).await.unwrap().len(), 2);
        assert!(store.agents_of_owner("o9", 10).await.unwrap().is_empty());
        assert_eq!(
            store.live_agent_by_token_hash("hash-a").await.unwrap(),
            None,
            "exited"
        );

        // Children, and their children, make a tree.
        let child = yard_core::Agent {
            parent: Some(a.id.clone()),
            ..agent("aaaa0003", Running)
        };
        let grandchild = yard_core::Agent {
            parent: Some(child.id.clone()),
            ..agent("aaaa0004", Running)
        };
        store.insert_agent(&child, "hash-d").await.unwrap();
        store.insert_agent(&grandchild, "hash-e").await.unwrap();
        assert_eq!(store.child_count(&a.id).await.unwrap(), 1);
        let tree: Vec<String> = store
            .agent_tree(&a.id, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.id.to_string())
            .collect();
        assert_eq!(tree.len(), 3, "{tree:?}");
        assert!(!tree.contains(&"aaaa0002".to_owned()));
        assert_eq!(
            store
                .agents_of_owner_with_status("inst", "o1", &[Running])
                .await
                .unwrap()
                .len(),
            3
        );
    })
    .await;
}

#[tokio::test]
async fn hook_calls_are_audited_per_agent() {
    use yard_core::AuditEntry;
    on_each_backend(|store| async move {
        let a = agent("bbbb0001", yard_core::AgentStatus::Running);
        store.insert_agent(&a, "hash-c").await.unwrap();
        for (i, decision) in [yard_core::Decision::Allow, yard_core::Decision::Deny]
            .into_iter()
            .enumerate()
        {
            store
                .insert_audit(&AuditEntry {
                    id: format!("e{i}"),
                    agent_id: a.id.clone(),
                    event: "PreToolUse".into(),
                    tool: Some("Bash".into()),
                    subject: Some("rm -rf /".into()),
                    input: Some("{\"command\":\"rm -rf /\"}".into()),
                    decision,
                    asked: i == 1,
                    rule: "no-rm".into(),
                    reason: "no".into(),
                    created_at: Timestamp(i as i64),
                })
                .await
                .unwrap();
        }
        let entries = store.audit(&a.id).await.unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (entries[1].decision, entries[1].asked),
            (yard_core::Decision::Deny, true)
        );
        assert!(
            store
                .audit(&yard_core::AgentId::from_trusted("none0000"))
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires_or_is_given_up() {
    on_each_backend(|store| async move {
        let mut d = deployment("leased");
        d.advance(DeploymentStatus::CreatingProject, Timestamp(1_500))
            .unwrap();
        store
            .insert_leased_deployment(&d, Some(("a", 10_000)))
            .await
            .unwrap();
        // Held by a: nobody else takes it before it expires.
        assert!(
            !store
                .claim_deployment(&d.id, "b", 20_000, 5_000, false)
                .await
                .unwrap()
        );
        assert!(
            store
                .unleased_active_deployments(5_000)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.renew_lease(&d.id, "a", 15_000).await.unwrap());
        assert!(!store.renew_lease(&d.id, "b", 15_000).await.unwrap());
        // Expired: listed, and exactly one of two claimants wins.
        let orphaned = store.unleased_active_deployments(16_000).await.unwrap();
        assert_eq!(orphaned.len(), 1);
        let (b, c) = tokio::join!(
            store.claim_deployment(&d.id, "b", 30_000, 16_000, false),
            store.claim_deployment(&d.id, "c", 30_000, 16_000, false),
        );
        assert!(b.unwrap() ^ c.unwrap(), "one winner");
        // The loser of a takeover learns it when renewing fails.
        assert!(!store.renew_lease(&d.id, "a", 40_000).await.unwrap());
        // Given up: free at once; a forced claim takes it whatever.
        store.release_lease(&d.id, "b").await.unwrap();
        store.release_lease(&d.id, "c").await.unwrap();
        assert_eq!(
            store
                .unleased_active_deployments(16_000)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .claim_deployment(&d.id, "a", 50_000, 16_000, false)
                .await
                .unwrap()
        );
        assert!(
            store
                .claim_deployment(&d.id, "z", 50_000, 16_000, true)
                .await
                .unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn the_first_instance_id_is_kept_for_every_daemon() {
    on_each_backend(|store| async move {
        assert_eq!(store.instance_id("first").await.unwrap(), "first");
        assert_eq!(store.instance_id("second").await.unwrap(), "first");
    })
    .await;
}

#[tokio::test]
async fn a_question_is_settled_once_and_keeps_its_options() {
    use yard_core::{AgentId, Question, QuestionKind, QuestionOutcome};
    on_each_backend(|store| async move {
        let agent = AgentId::generate();
        let question = Question {
            id: "q1".into(),
            agent_id: agent.clone(),
            owner_id: Some("o-alice".into()),
            kind: QuestionKind::Select {
                options: vec!["red".into(), "blue sky".into()],
            },
            message: "which?".into(),
            context: None,
            deadline: Timestamp(9_000),
            created_at: Timestamp(1_000),
            outcome: QuestionOutcome::Pending,
            origin: Some("{\"hook\":1}".into()),
            agent_task: Some("Fix the \"build\"; twice".into()),
        };
        store.insert_question(&question).await.unwrap();
        assert_eq!(store.question("q1").await.unwrap(), Some(question.clone()));
        assert_eq!(
            store.question_and_agent_status("q1").await.unwrap(),
            Some((question.clone(), None)),
            "no such agent in the store"
        );
        assert_eq!(store.question_and_agent_status("q9").await.unwrap(), None);
        assert_eq!(store.pending_questions().await.unwrap().len(), 1);
        let answered = QuestionOutcome::Answered {
            answer: "red".into(),
            by: "alice".into(),
            reason: None,
        };
        let (first, second) = tokio::join!(
            store.settle_question("q1", &answered, Timestamp(2_000)),
            store.settle_question("q1", &QuestionOutcome::TimedOut, Timestamp(2_000)),
        );
        assert!(first.unwrap() ^ second.unwrap(), "exactly one outcome wins");
        assert!(store.pending_questions().await.unwrap().is_empty());
        let settled = store.question("q1").await.unwrap().unwrap();
        assert!(!settled.outcome.is_pending());

        let mut another = question.clone();
        another.id = "q2".into();
        another.kind = QuestionKind::Text;
        store.insert_question(&another).await.unwrap();
        assert_eq!(
            store
                .cancel_questions_of(&agent, Timestamp(3_000))
                .await
                .unwrap(),
            vec!["q2".to_owned()]
        );
        assert_eq!(
            store.question("q2").await.unwrap().unwrap().outcome,
            QuestionOutcome::Cancelled
        );
    })
    .await;
}

/// Values that break SQL built by pasting strings.
const AWKWARD_VALUES: [&str; 6] = [
    "it's \"quoted\"",
    "semi; colon;",
    "line one\nline two\r\n",
    "'); DROP TABLE config; --",
    "ünïcødé ✓ 山",
    "$1 $2 \\x00 %s",
];

#[tokio::test]
async fn settings_keep_any_value_as_it_was_given() {
    use yard_core::{ConfigKey, ConfigRecord};
    on_each_backend(|store| async move {
        assert_eq!(store.config(ConfigKey::ForgeUrl).await.unwrap(), None);
        for (i, value) in AWKWARD_VALUES.iter().enumerate() {
            let record = ConfigRecord {
                key: ConfigKey::ForgeAdminUser,
                value: (*value).to_owned(),
                secret: false,
                updated_at: Timestamp(1_000 + i64::try_from(i).unwrap()),
            };
            store.put_config(&record).await.unwrap();
            assert_eq!(
                store.config(ConfigKey::ForgeAdminUser).await.unwrap(),
                Some(record)
            );
        }
        let secret = ConfigRecord {
            key: ConfigKey::ForgeBotToken,
            value: "v1:00:ff".into(),
            secret: true,
            updated_at: Timestamp(5_000),
        };
        store.put_config(&secret).await.unwrap();
        let all = store.config_records().await.unwrap();
        assert_eq!(
            all.iter().map(|r| (r.key, r.secret)).collect::<Vec<_>>(),
            [
                (ConfigKey::ForgeAdminUser, false),
                (ConfigKey::ForgeBotToken, true)
            ]
        );
        assert!(store.delete_config(ConfigKey::ForgeBotToken).await.unwrap());
        assert!(!store.delete_config(ConfigKey::ForgeBotToken).await.unwrap());
        assert_eq!(store.config(ConfigKey::ForgeBotToken).await.unwrap(), None);
        assert_eq!(
            store.config_records().await.unwrap().len(),
            1,
            "the table is still there"
        );
    })
    .await;
}

#[tokio::test]
async fn a_delivery_is_recorded_once_whoever_receives_it() {
    use yard_core::DeliveryOutcome;
    on_each_backend(|store| async move {
        let attempts = (0..8).map(|_| {
            let store = store.clone();
            async move {
                store
                    .record_delivery("d-1", "issues", DeliveryOutcome::Accepted, Timestamp(1_000))
                    .await
                    .unwrap()
            }
        });
        let firsts = futures::future::join_all(attempts).await;
        assert_eq!(firsts.iter().filter(|new| **new).count(), 1, "{firsts:?}");
        for id in AWKWARD_VALUES {
            assert!(
                store
                    .record_delivery(id, id, DeliveryOutcome::Ignored, Timestamp(2_000))
                    .await
                    .unwrap()
            );
        }
    })
    .await;
}

fn work(issue: &str, instance: &str, at: i64) -> yard_core::IssueWork {
    yard_core::IssueWork {
        issue: issue.to_owned(),
        repository: "Team/App".to_owned(),
        number: 7,
        title: "it's; a \"title\"\nwith lines".to_owned(),
        body: AWKWARD_VALUES.join("\n"),
        instance: instance.to_owned(),
        agent: None,
        started_at: Timestamp(at),
        finished_at: None,
    }
}

#[tokio::test]
async fn an_issue_is_taken_once_until_its_work_is_finished() {
    use yard_core::AgentId;
    on_each_backend(|store| async move {
        let attempts = (0..8).map(|i| {
            let store = store.clone();
            async move {
                store
                    .take_issue(&work("team/app#7", "yard-a", 1_000 + i))
                    .await
                    .unwrap()
            }
        });
        let takes = futures::future::join_all(attempts).await;
        assert_eq!(takes.iter().filter(|t| **t).count(), 1, "{takes:?}");
        let agent = AgentId::generate();
        store.set_issue_agent("team/app#7", &agent).await.unwrap();
        let kept = store.issue_work("team/app#7").await.unwrap().unwrap();
        assert_eq!(kept.agent.as_ref(), Some(&agent));
        assert_eq!(kept.title, work("", "", 0).title);
        assert_eq!(kept.body, AWKWARD_VALUES.join("\n"));
        store
            .take_issue(&work("team/other#1", "yard-b", 500))
            .await
            .unwrap();
        let unfinished = store.unfinished_issue_work("yard-a").await.unwrap();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].issue, "team/app#7");

        assert!(
            store
                .finish_issue("team/app#7", Timestamp(9_000))
                .await
                .unwrap()
        );
        assert!(
            !store
                .finish_issue("team/app#7", Timestamp(9_001))
                .await
                .unwrap()
        );
        assert!(
            store
                .unfinished_issue_work("yard-a")
                .await
                .unwrap()
                .is_empty()
        );
        // Finished work is taken again, with no agent yet.
        assert!(
            store
                .take_issue(&work("team/app#7", "yard-a", 10_000))
                .await
                .unwrap()
        );
        let again = store.issue_work("team/app#7").await.unwrap().unwrap();
        assert_eq!((again.agent, again.finished_at), (None, None));
        assert_eq!(again.started_at, Timestamp(10_000));
    })
    .await;
}

#[tokio::test]
async fn guidance_is_recorded_once_per_comment_and_delivered_once() {
    on_each_backend(|store| async move {
        for (comment_id, text) in [(12, AWKWARD_VALUES[0]), (11, "use the cache")] {
            let guidance = yard_core::IssueGuidance {
                issue: "team/app#7".to_owned(),
                comment_id,
                author: "alice".to_owned(),
                text: text.to_owned(),
                received_at: Timestamp(comment_id * 10),
                delivered_to: None,
            };
            assert!(store.add_guidance(&guidance).await.unwrap());
            assert!(!store.add_guidance(&guidance).await.unwrap());
        }
        let waiting = store.waiting_guidance("team/app#7").await.unwrap();
        let order: Vec<i64> = waiting.iter().map(|g| g.comment_id).collect();
        assert_eq!(order, [11, 12]);
        assert_eq!(waiting[1].text, AWKWARD_VALUES[0]);
        assert!(
            store
                .deliver_guidance("team/app#7", 11, "question:q1")
                .await
                .unwrap()
        );
        assert!(
            !store
                .deliver_guidance("team/app#7", 11, "task:a1")
                .await
                .unwrap()
        );
        let waiting = store.waiting_guidance("team/app#7").await.unwrap();
        assert_eq!(waiting.len(), 1);
        assert!(
            store
                .waiting_guidance("team/app#8")
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}
