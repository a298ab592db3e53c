//! Fetching from and pushing to a remote: nothing about the remote or its
//! credential is left in the repository, and a credential never shows in
//! an error or a `Debug`.

#![allow(clippy::unwrap_used)]

use yard_git::{HttpAuth, Repo};
use yard_testkit::{git as run, git_repo};

#[tokio::test]
async fn a_bare_copy_fetches_a_branch_and_pushes_one_back_under_another_name() {
    let remote = git_repo(&[("README.md", "hello\n")]);
    run(remote.path(), &["branch", "-M", "main"]);
    let head = run(remote.path(), &["rev-parse", "HEAD"]);
    let url = format!("file://{}", remote.path().display());
    let auth = HttpAuth {
        user: "bot".to_owned(),
        password: "s3cret-token".to_owned(),
    };
    assert!(!format!("{auth:?}").contains("s3cret-token"));

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("owner/app");
    let repo = Repo::init_bare(&local, "main").await.unwrap();
    assert_eq!(
        repo.fetch_from(&url, &auth, "main").await.unwrap(),
        head.trim()
    );
    // A second time opens what is there and fetches again.
    let repo = Repo::init_bare(&local, "main").await.unwrap();
    assert_eq!(
        repo.fetch_from(&url, &auth, "main").await.unwrap(),
        head.trim()
    );
    // HEAD names the remote's default branch, so a spawn needs no base.
    let head_ref = std::fs::read_to_string(local.join("HEAD")).unwrap();
    assert_eq!(head_ref.trim(), "ref: refs/heads/main");
    let config = std::fs::read_to_string(local.join("config")).unwrap();
    assert!(
        !config.contains("s3cret") && !config.contains("url"),
        "{config}"
    );

    repo.push_to(&url, &auth, "main", "issue-7").await.unwrap();
    assert_eq!(
        run(remote.path(), &["rev-parse", "refs/heads/issue-7"]).trim(),
        head.trim()
    );

    let missing = repo
        .fetch_from(&url, &auth, "no-such-branch")
        .await
        .unwrap_err();
    let text = missing.to_string();
    assert!(
        !text.contains("s3cret") && !text.contains("credential.helper"),
        "{text}"
    );
    assert!(text.contains("no-such-branch"), "{text}");
}
