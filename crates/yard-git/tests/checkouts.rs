//! Checkouts, fetch-back, diffs and merges on real repositories.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use yard_git::{GitError, MergeOutcome, Repo};
use yard_testkit::{git as run, git_repo};

/// A repository with one commit on `main`: README.md and shared.txt.
fn source() -> tempfile::TempDir {
    git_repo(&[("README.md", "hello\n"), ("shared.txt", "one\n")])
}

fn commit_in(dir: &Path, file: &str, contents: &str, message: &str) {
    std::fs::write(dir.join(file), contents).unwrap();
    run(dir, &["add", "."]);
    run(dir, &["commit", "-qm", message]);
}

#[tokio::test]
async fn a_checkout_borrows_objects_and_its_branch_comes_back() {
    let src = source();
    let repo = Repo::open(&src.path().join(".")).await.unwrap();
    assert_eq!(
        repo.objects_dir(),
        src.path().canonicalize().unwrap().join(".git/objects")
    );
    let base = repo.resolve_commit("HEAD").await.unwrap();
    repo.protect_objects().await.unwrap();
    assert_eq!(
        run(src.path(), &["config", "extensions.preciousObjects"]),
        "true"
    );

    let work = tempfile::tempdir().unwrap();
    let checkout = work.path().join("a1");
    repo.create_checkout(&checkout, "yard/a1", &base)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(checkout.join("README.md")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        run(&checkout, &["branch", "--format=%(refname)"]),
        "refs/heads/yard/a1",
        "only its own branch"
    );
    let packed = std::fs::read_dir(checkout.join(".git/objects"))
        .unwrap()
        .count();
    assert!(packed <= 3, "no objects copied: {packed}");

    commit_in(&checkout, "agent.txt", "work\n", "agent work");
    assert_eq!(
        repo.fetch_branch(&checkout, "yard/a1")
            .await
            .unwrap()
            .as_deref(),
        Some(run(&checkout, &["rev-parse", "HEAD"]).as_str())
    );
    let commits = repo.commits(&base, "yard/a1").await.unwrap();
    assert_eq!(commits.len(), 1);
    assert_eq!(
        (commits[0].subject.as_str(), commits[0].author.as_str()),
        ("agent work", "Test")
    );
    let diff = repo.diff(&base, "yard/a1").await.unwrap();
    assert!(
        diff.contains("+work") && diff.contains("agent.txt"),
        "{diff}"
    );

    // gc in the source must not break the checkout.
    run(src.path(), &["gc", "-q", "--prune=now"]);
    run(&checkout, &["fsck", "--no-progress"]);

    assert_eq!(
        repo.fetch_branch(&checkout, "yard/nope").await.unwrap(),
        None
    );
    assert_eq!(
        repo.fetch_branch(&work.path().join("gone"), "yard/a1")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn merges_are_all_or_nothing() {
    let src = source();
    let repo = Repo::open(src.path()).await.unwrap();
    let base = repo.resolve_commit("main").await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    repo.create_checkout(&a, "yard/a", &base).await.unwrap();
    repo.create_checkout(&b, "yard/b", &base).await.unwrap();
    commit_in(&a, "shared.txt", "from a\n", "a changes shared");
    commit_in(&b, "shared.txt", "from b\n", "b changes shared");
    repo.fetch_branch(&a, "yard/a").await.unwrap();
    repo.fetch_branch(&b, "yard/b").await.unwrap();

    let merged = repo.merge("yard/a", "Merge agent a").await.unwrap();
    assert!(
        matches!(&merged, MergeOutcome::Merged { into, .. } if into == "main"),
        "{merged:?}"
    );
    assert_eq!(
        std::fs::read_to_string(src.path().join("shared.txt")).unwrap(),
        "from a\n"
    );
    assert_eq!(
        repo.merge("yard/a", "again").await.unwrap(),
        MergeOutcome::UpToDate {
            into: "main".into()
        }
    );

    let before = run(src.path(), &["rev-parse", "HEAD"]);
    let conflict = repo.merge("yard/b", "Merge agent b").await.unwrap();
    assert_eq!(
        conflict,
        MergeOutcome::Conflicts {
            into: "main".into(),
            files: vec!["shared.txt".into()]
        }
    );
    assert_eq!(
        run(src.path(), &["rev-parse", "HEAD"]),
        before,
        "nothing half-merged"
    );
    assert_eq!(run(src.path(), &["status", "--porcelain"]), "");

    std::fs::write(src.path().join("README.md"), "edited\n").unwrap();
    assert!(matches!(
        repo.merge("yard/b", "m").await,
        Err(GitError::Dirty(_))
    ));

    repo.delete_branch("yard/b").await.unwrap();
    repo.delete_branch("yard/b").await.unwrap();
    assert!(run(src.path(), &["branch", "--list", "yard/b"]).is_empty());
}

#[tokio::test]
async fn bad_paths_and_refs_are_named() {
    let missing = Repo::open(Path::new("/nonexistent/repo"))
        .await
        .unwrap_err();
    assert!(matches!(missing, GitError::NoSuchPath(_)), "{missing}");
    let plain = tempfile::tempdir().unwrap();
    let not_git = Repo::open(plain.path()).await.unwrap_err();
    assert!(matches!(not_git, GitError::NotARepository(_)), "{not_git}");
    let src = source();
    let repo = Repo::open(src.path()).await.unwrap();
    let unknown = repo.resolve_commit("no-such-branch").await.unwrap_err();
    assert!(unknown.to_string().contains("no-such-branch"), "{unknown}");
    assert!(repo.resolve_commit("--help").await.is_err());
}
