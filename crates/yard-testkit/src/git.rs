//! Throwaway git repositories for tests.

use std::path::Path;
use std::process::Command;

/// Runs `git ARGS` in `dir` as a test user, on `main` by default, in
/// repositories of any owner; panics with git's message when it fails.
/// Returns its trimmed output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "safe.directory=*",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A new repository whose first commit, on `main`, holds `files`.
pub fn git_repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    git_repo_at(dir.path(), files);
    dir
}

/// A new repository at `dir` (made if missing) whose first commit, on
/// `main`, holds `files`.
pub fn git_repo_at(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("the repository's directory");
    git(dir, &["init", "-q"]);
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
        std::fs::write(path, contents).expect("a file");
    }
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "first"]);
}
