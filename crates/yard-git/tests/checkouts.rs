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
        repo.fetch_branch(&checkout, "yard/a1", &base)
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
        repo.fetch_branch(&checkout, "yard/nope", &base)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.fetch_branch(&work.path().join("gone"), "yard/a1", &base)
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
    repo.fetch_branch(&a, "yard/a", &base).await.unwrap();
    repo.fetch_branch(&b, "yard/b", &base).await.unwrap();

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

/// `chown -R uid:uid path`.
fn chown_tree(path: &Path, uid: u32) {
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Paths under `dir` not owned by `uid`.
fn not_owned_by(dir: &Path, uid: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut pending = vec![dir.to_owned()];
    let mut foreign = Vec::new();
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.uid() != uid {
            foreign.push(path.display().to_string());
        }
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    foreign
}

/// As root (as the yard runs in its container), the work comes back from a
/// checkout of one user into a repository of another, and everything git
/// writes in the repository belongs to the repository's owner.
#[tokio::test]
async fn work_comes_back_across_owners_and_belongs_to_the_repository_owner() {
    if !nix_is_root() {
        eprintln!("skipped: needs root to own files as other users");
        return;
    }
    let (owner, agent_user) = (1001, 1000);
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        top.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let src = top.path().join("src");
    yard_testkit::git_repo_at(&src, &[("README.md", "hello\n"), ("shared.txt", "one\n")]);
    chown_tree(&src, owner);
    let repo = Repo::open(&src).await.unwrap();
    let base = repo.resolve_commit("HEAD").await.unwrap();
    repo.protect_objects().await.unwrap();

    let checkout = top.path().join("work/a1");
    repo.create_checkout(&checkout, "yard/a1", &base)
        .await
        .unwrap();
    chown_tree(&checkout, agent_user);
    // Nothing new yet: the branch comes back as the base.
    assert_eq!(
        repo.fetch_branch(&checkout, "yard/a1", &base)
            .await
            .unwrap(),
        Some(base.clone())
    );
    commit_in(&checkout, "agent.txt", "work\n", "agent work");
    chown_tree(&checkout, agent_user);

    let head = repo
        .fetch_branch(&checkout, "yard/a1", &base)
        .await
        .unwrap();
    assert_eq!(
        head.as_deref(),
        Some(run(&checkout, &["rev-parse", "HEAD"]).as_str())
    );
    let diff = repo.diff(&base, "yard/a1").await.unwrap();
    assert!(diff.contains("+work"), "{diff}");
    let merged = repo.merge("yard/a1", "Merge agent a1").await.unwrap();
    assert!(matches!(merged, MergeOutcome::Merged { .. }), "{merged:?}");
    assert_eq!(
        std::fs::read_to_string(src.join("agent.txt")).unwrap(),
        "work\n"
    );
    assert_eq!(
        not_owned_by(&src, owner),
        Vec::<String>::new(),
        "git wrote as the repository's owner"
    );
}

/// A repository whose owner cannot reach it is refused with the reason, not
/// with git's words.
#[tokio::test]
async fn an_owner_who_cannot_reach_their_repository_is_told_why() {
    if !nix_is_root() {
        eprintln!("skipped: needs root to own files as other users");
        return;
    }
    let closed = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        closed.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let src = closed.path().join("src");
    yard_testkit::git_repo_at(&src, &[("README.md", "hello\n")]);
    chown_tree(&src, 1001);
    let err = Repo::open(&src).await.unwrap_err();
    assert!(
        matches!(err, GitError::OwnerCannotReach { uid: 1001, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod o+x"), "{err}");
}

fn nix_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
