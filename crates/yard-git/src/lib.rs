//! Git for agents: checkouts, branches brought back, diffs and merges.
//!
//! Each agent works in its own checkout: a fresh repository whose
//! `objects/info/alternates` points at the source repository's objects, with
//! exactly one branch, `yard/<agent>`, at the base commit. Nothing is copied,
//! the source's objects are only read (the agent's container mounts them
//! read-only), and the agent sees no other branch. Because checkouts rely on
//! the source's objects, the source is marked `extensions.preciousObjects`,
//! which stops `git gc` from pruning them.
//!
//! This drives the `git` command line: it is what users have, it handles
//! every repository layout, and its behaviour is the reference. Every call
//! runs with `safe.directory=*` (checkouts may belong to another user than
//! the yard) and never prompts.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use tokio::process::Command;

/// What went wrong with a git operation.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{} does not exist", .0.display())]
    NoSuchPath(PathBuf),
    #[error("{} is not a git repository", .0.display())]
    NotARepository(PathBuf),
    #[error("{reference:?} is not a commit in {}", .repo.display())]
    UnknownRef { repo: PathBuf, reference: String },
    #[error("{} has uncommitted changes; commit or stash them before merging", .0.display())]
    Dirty(PathBuf),
    #[error("{} is a bare repository; there is no branch checked out to merge into", .0.display())]
    Bare(PathBuf),
    #[error("git {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
}

/// A commit on an agent's branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub author: String,
    pub subject: String,
}

/// How a merge went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The branch is in; `commit` is the new HEAD of `into`.
    Merged { into: String, commit: String },
    /// Nothing to do: the branch was already part of `into`.
    UpToDate { into: String },
    /// The merge would conflict in these files; nothing was changed.
    Conflicts { into: String, files: Vec<String> },
}

/// A source repository that agents work on.
#[derive(Debug, Clone)]
pub struct Repo {
    /// Where commands run: the working tree, or the git dir when bare.
    path: PathBuf,
    /// The shared git directory (`.git`, or the repository when bare).
    common_dir: PathBuf,
    bare: bool,
}

/// Runs `git` in `dir` and returns its trimmed stdout.
async fn git<I, S>(dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = Command::new("git")
        .arg("-c")
        .arg("safe.directory=*")
        .arg("-C")
        .arg(dir)
        .args(&args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .kill_on_drop(true)
        .output()
        .await?;
    if !output.status.success() {
        return Err(GitError::Failed {
            args: args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned())
}

impl Repo {
    /// Opens the repository at (or above) `path`.
    pub async fn open(path: &Path) -> Result<Self, GitError> {
        let path = tokio::fs::canonicalize(path)
            .await
            .map_err(|_| GitError::NoSuchPath(path.to_owned()))?;
        let not_a_repo = || GitError::NotARepository(path.clone());
        let out = git(
            &path,
            [
                "rev-parse",
                "--path-format=absolute",
                "--is-bare-repository",
                "--git-common-dir",
            ],
        )
        .await
        .map_err(|_| not_a_repo())?;
        let mut lines = out.lines();
        let bare = lines.next() == Some("true");
        let common_dir = PathBuf::from(lines.next().ok_or_else(not_a_repo)?);
        let path = if bare {
            common_dir.clone()
        } else {
            PathBuf::from(git(&path, ["rev-parse", "--show-toplevel"]).await?)
        };
        Ok(Self {
            path,
            common_dir,
            bare,
        })
    }

    /// The working tree (or, for a bare repository, the repository itself).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The object store that checkouts borrow from; mount it read-only at
    /// the same path wherever a checkout is used.
    pub fn objects_dir(&self) -> PathBuf {
        self.common_dir.join("objects")
    }

    /// The commit `reference` names.
    pub async fn resolve_commit(&self, reference: &str) -> Result<String, GitError> {
        let spec = format!("{reference}^{{commit}}");
        git(
            &self.path,
            [
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ],
        )
        .await
        .map_err(|_| GitError::UnknownRef {
            repo: self.path.clone(),
            reference: reference.to_owned(),
        })
    }

    /// Marks the objects precious, so `git gc` never prunes what a checkout
    /// borrows. The extension needs repository format version 1.
    pub async fn protect_objects(&self) -> Result<(), GitError> {
        let precious = git(
            &self.path,
            ["config", "--get", "extensions.preciousObjects"],
        )
        .await;
        if precious.is_ok_and(|value| value == "true") {
            return Ok(());
        }
        git(&self.path, ["config", "core.repositoryFormatVersion", "1"]).await?;
        git(&self.path, ["config", "extensions.preciousObjects", "true"]).await?;
        Ok(())
    }

    /// Makes a checkout of `commit` at `dir` on a new branch `branch`,
    /// borrowing this repository's objects.
    pub async fn create_checkout(
        &self,
        dir: &Path,
        branch: &str,
        commit: &str,
    ) -> Result<(), GitError> {
        tokio::fs::create_dir_all(dir).await?;
        git(dir, ["init", "--quiet"]).await?;
        let alternates = dir.join(".git/objects/info/alternates");
        tokio::fs::write(&alternates, format!("{}\n", self.objects_dir().display())).await?;
        let head = format!("refs/heads/{branch}");
        git(dir, ["update-ref", &head, commit]).await?;
        git(dir, ["symbolic-ref", "HEAD", &head]).await?;
        git(dir, ["reset", "--hard", "--quiet"]).await?;
        Ok(())
    }

    /// Brings `branch` from the checkout at `checkout` into this repository
    /// under the same name. Returns its commit, or `None` when the checkout
    /// or the branch is gone.
    pub async fn fetch_branch(
        &self,
        checkout: &Path,
        branch: &str,
    ) -> Result<Option<String>, GitError> {
        if !tokio::fs::try_exists(checkout.join(".git"))
            .await
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let head = format!("refs/heads/{branch}");
        if git(checkout, ["rev-parse", "--verify", "--quiet", &head])
            .await
            .is_err()
        {
            return Ok(None);
        }
        let refspec = format!("+{head}:{head}");
        let source = checkout.as_os_str();
        git(
            &self.path,
            [
                OsStr::new("fetch"),
                OsStr::new("--quiet"),
                OsStr::new("--no-tags"),
                source,
                OsStr::new(&refspec),
            ],
        )
        .await?;
        git(&self.path, ["rev-parse", &head]).await.map(Some)
    }

    /// The commits on `branch` that `base` does not have, oldest first.
    pub async fn commits(&self, base: &str, branch: &str) -> Result<Vec<Commit>, GitError> {
        let range = format!("{base}..refs/heads/{branch}");
        let out = git(
            &self.path,
            ["log", "--reverse", "--format=%H%x00%an%x00%s", &range],
        )
        .await?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, '\0');
                Some(Commit {
                    sha: parts.next()?.to_owned(),
                    author: parts.next()?.to_owned(),
                    subject: parts.next()?.to_owned(),
                })
            })
            .collect())
    }

    /// The changes on `branch` since it left `base`, as a unified diff.
    pub async fn diff(&self, base: &str, branch: &str) -> Result<String, GitError> {
        let range = format!("{base}...refs/heads/{branch}");
        git(&self.path, ["diff", "--no-color", "--no-ext-diff", &range]).await
    }

    /// Merges `branch` into the branch checked out here, or changes nothing:
    /// a conflict is reported with its files and the merge is aborted.
    pub async fn merge(&self, branch: &str, message: &str) -> Result<MergeOutcome, GitError> {
        if self.bare {
            return Err(GitError::Bare(self.path.clone()));
        }
        let into = git(&self.path, ["symbolic-ref", "--short", "HEAD"])
            .await
            .unwrap_or_else(|_| "HEAD".to_owned());
        let status = git(
            &self.path,
            ["status", "--porcelain", "--untracked-files=no"],
        )
        .await?;
        if !status.is_empty() {
            return Err(GitError::Dirty(self.path.clone()));
        }
        let head = format!("refs/heads/{branch}");
        if git(&self.path, ["merge-base", "--is-ancestor", &head, "HEAD"])
            .await
            .is_ok()
        {
            return Ok(MergeOutcome::UpToDate { into });
        }
        let mut args = Vec::new();
        if git(&self.path, ["config", "user.email"]).await.is_err() {
            args.extend([
                "-c",
                "user.name=agentyard",
                "-c",
                "user.email=agentyard@localhost",
            ]);
        }
        args.extend(["merge", "--no-ff", "--no-edit", "-m", message, &head]);
        match git(&self.path, &args).await {
            Ok(_) => Ok(MergeOutcome::Merged {
                commit: git(&self.path, ["rev-parse", "HEAD"]).await?,
                into,
            }),
            Err(failure) => {
                let conflicted =
                    git(&self.path, ["diff", "--name-only", "--diff-filter=U"]).await?;
                let files: Vec<String> = conflicted.lines().map(str::to_owned).collect();
                // Whatever happened, leave nothing half-merged behind.
                let _ = git(&self.path, ["merge", "--abort"]).await;
                if files.is_empty() {
                    return Err(failure);
                }
                Ok(MergeOutcome::Conflicts { into, files })
            }
        }
    }

    /// Deletes `branch` here, if it exists.
    pub async fn delete_branch(&self, branch: &str) -> Result<(), GitError> {
        let head = format!("refs/heads/{branch}");
        if git(&self.path, ["rev-parse", "--verify", "--quiet", &head])
            .await
            .is_ok()
        {
            git(&self.path, ["update-ref", "-d", &head]).await?;
        }
        Ok(())
    }
}
