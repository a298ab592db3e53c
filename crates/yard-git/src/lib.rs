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
//! runs with `safe.directory=*` and never prompts.
//!
//! A yard that runs as root runs git in a person's repository as that
//! repository's owner: objects, refs and merged files it writes belong to
//! the person, and whatever the repository's own configuration makes git
//! run (hooks, merge drivers, `core.fsmonitor`) runs with that person's
//! rights, never root's. Checkouts are the yard's: it reads them only with
//! plumbing that runs no hooks, filters or helpers (`rev-parse`,
//! `pack-objects`), and a branch comes back as a pack piped from the
//! checkout's side to the source's `index-pack`, so no git process ever
//! needs both sides' rights.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
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
    #[error(
        "{} belongs to uid {uid}, who cannot reach it: {} is closed to them; the yard works in a repository as its owner, so open that directory to them (chmod o+x) or move the repository",
        .path.display(),
        .closed.display()
    )]
    OwnerCannotReach {
        path: PathBuf,
        uid: u32,
        closed: PathBuf,
    },
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
    /// Who git runs as here.
    owner: RunAs,
}

/// A user and password (or token) for a remote over HTTP. Its `Debug`
/// leaves the password out.
#[derive(Clone)]
pub struct HttpAuth {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A credential helper answering from `YARD_GIT_USERNAME` and
/// `YARD_GIT_PASSWORD`, set on the one git process that needs them.
const CREDENTIAL_HELPER: &str = "credential.helper=!f() { test \"$1\" = get || exit 0; printf 'username=%s\\npassword=%s\\n' \"$YARD_GIT_USERNAME\" \"$YARD_GIT_PASSWORD\"; }; f";

/// The user a git process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunAs {
    /// The yard's own user.
    Yard,
    /// Another user: the owner of the repository, when the yard is root.
    User { uid: u32, gid: u32 },
}

impl RunAs {
    /// The owner of `path`, if the yard can act as them (it is root) and
    /// they are not the yard's own user. An owner who cannot reach their
    /// own repository (a directory above it is closed to them) is an error
    /// that says so, rather than git's puzzling one.
    async fn owner_of(path: &Path) -> Result<Self, GitError> {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = tokio::fs::metadata(path).await else {
            return Ok(Self::Yard);
        };
        let me = nix::unistd::geteuid();
        if !me.is_root() || meta.uid() == me.as_raw() {
            return Ok(Self::Yard);
        }
        let (uid, gid) = (meta.uid(), meta.gid());
        for dir in path.ancestors().skip(1) {
            let Ok(above) = tokio::fs::metadata(dir).await else {
                continue;
            };
            let search = if above.uid() == uid {
                0o100
            } else if above.gid() == gid {
                0o010
            } else {
                0o001
            };
            if above.mode() & search == 0 {
                return Err(GitError::OwnerCannotReach {
                    path: path.to_owned(),
                    uid,
                    closed: dir.to_owned(),
                });
            }
        }
        Ok(Self::User { uid, gid })
    }

    /// `git -c safe.directory=* -C dir`, as this user.
    fn command(self, dir: &Path) -> Command {
        let mut command = Command::new("git");
        command
            .arg("-c")
            .arg("safe.directory=*")
            .arg("-C")
            .arg(dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .kill_on_drop(true);
        if let Self::User { uid, gid } = self {
            // The user's own configuration, not root's; setting the uid
            // also clears root's supplementary groups.
            let home = nix::unistd::User::from_uid(uid.into())
                .ok()
                .flatten()
                .map_or_else(|| PathBuf::from("/"), |user| user.dir);
            command
                .uid(uid)
                .gid(gid)
                .env("HOME", home)
                .env_remove("XDG_CONFIG_HOME");
        }
        command
    }
}

/// The error for a git command that failed.
fn failed(args: &[std::ffi::OsString], stderr: &[u8]) -> GitError {
    GitError::Failed {
        args: args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        stderr: String::from_utf8_lossy(stderr).trim().to_owned(),
    }
}

/// Runs `git` in `dir` as `run_as` and returns its trimmed stdout.
async fn git_as<I, S>(run_as: RunAs, dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = run_as.command(dir).args(&args).output().await?;
    if !output.status.success() {
        return Err(failed(&args, &output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned())
}

fn os_args(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(Into::into).collect()
}

/// `git` in an agent's checkout, as the yard. The agent controls the
/// checkout's configuration, so nothing it names may run: no hooks, no
/// file system monitor (and only plumbing is used here).
fn checkout_command(checkout: &Path) -> Command {
    let mut command = RunAs::Yard.command(checkout);
    command
        .args(["-c", "core.hooksPath=/dev/null"])
        .args(["-c", "core.fsmonitor=false"]);
    command
}

/// Runs `git` in an agent's checkout (see [`checkout_command`]).
async fn checkout_git<const N: usize>(
    checkout: &Path,
    args: [&str; N],
) -> Result<String, GitError> {
    let output = checkout_command(checkout).args(args).output().await?;
    if !output.status.success() {
        return Err(failed(&os_args(&args), &output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned())
}

/// Runs `git` in `dir` as the yard itself.
async fn git<I, S>(dir: &Path, args: I) -> Result<String, GitError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    git_as(RunAs::Yard, dir, args).await
}

impl Repo {
    /// Opens the repository at (or above) `path`.
    pub async fn open(path: &Path) -> Result<Self, GitError> {
        let path = tokio::fs::canonicalize(path)
            .await
            .map_err(|_| GitError::NoSuchPath(path.to_owned()))?;
        let not_a_repo = || GitError::NotARepository(path.clone());
        let out = git_as(
            RunAs::owner_of(&path).await?,
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
        let owner = RunAs::owner_of(&common_dir).await?;
        let path = if bare {
            common_dir.clone()
        } else {
            PathBuf::from(git_as(owner, &path, ["rev-parse", "--show-toplevel"]).await?)
        };
        Ok(Self {
            path,
            common_dir,
            bare,
            owner,
        })
    }

    /// Runs `git` here, as the repository's owner.
    async fn git<I, S>(&self, args: I) -> Result<String, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        git_as(self.owner, &self.path, args).await
    }

    /// The shared git directory: `.git`, or the repository itself when bare.
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
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
        self.git([
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ])
        .await
        .map_err(|_| GitError::UnknownRef {
            repo: self.path.clone(),
            reference: reference.to_owned(),
        })
    }

    /// Marks the objects precious, so `git gc` never prunes what a checkout
    /// borrows. The extension needs repository format version 1.
    pub async fn protect_objects(&self) -> Result<(), GitError> {
        let precious = self
            .git(["config", "--get", "extensions.preciousObjects"])
            .await;
        if precious.is_ok_and(|value| value == "true") {
            return Ok(());
        }
        self.git(["config", "core.repositoryFormatVersion", "1"])
            .await?;
        self.git(["config", "extensions.preciousObjects", "true"])
            .await?;
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
    /// under the same name (replacing what it held). `base` is a commit this
    /// repository has and the branch grew from: only what came after it is
    /// sent. Returns the branch's commit, or `None` when the checkout or the
    /// branch is gone.
    pub async fn fetch_branch(
        &self,
        checkout: &Path,
        branch: &str,
        base: &str,
    ) -> Result<Option<String>, GitError> {
        if !tokio::fs::try_exists(checkout.join(".git"))
            .await
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let head = format!("refs/heads/{branch}");
        let Ok(commit) = checkout_git(
            checkout,
            [
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{head}^{{commit}}"),
            ],
        )
        .await
        else {
            return Ok(None);
        };
        // Already here: no new commits, or an earlier fetch brought them.
        if self
            .git(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .await
            .is_err()
        {
            self.receive(checkout, &commit, base).await?;
        }
        self.git(["update-ref", &head, &commit]).await?;
        Ok(Some(commit))
    }

    /// Copies the objects of `commit` that `base` does not reach from the
    /// checkout into this repository: the checkout's `pack-objects` (as the
    /// yard) piped into this repository's `index-pack` (as its owner).
    async fn receive(&self, checkout: &Path, commit: &str, base: &str) -> Result<(), GitError> {
        let pack_args = ["pack-objects", "--revs", "--stdout", "-q"];
        let mut pack = checkout_command(checkout)
            .args(pack_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (Some(mut revs), Some(packed)) = (pack.stdin.take(), pack.stdout.take()) else {
            return Err(GitError::Spawn(std::io::Error::other(
                "pack-objects has no pipes",
            )));
        };
        let packed: Stdio = packed.try_into()?;
        let index_args = ["index-pack", "--stdin"];
        let index = self
            .owner
            .command(&self.path)
            .args(index_args)
            .stdin(packed)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        revs.write_all(format!("{commit}\n^{base}\n").as_bytes())
            .await?;
        drop(revs);
        let (packed, indexed) = tokio::join!(pack.wait_with_output(), index.wait_with_output());
        let (packed, indexed) = (packed?, indexed?);
        if !packed.status.success() {
            return Err(failed(&os_args(&pack_args), &packed.stderr));
        }
        if !indexed.status.success() {
            return Err(failed(&os_args(&index_args), &indexed.stderr));
        }
        Ok(())
    }

    /// The commits on `branch` that `base` does not have, oldest first.
    pub async fn commits(&self, base: &str, branch: &str) -> Result<Vec<Commit>, GitError> {
        let range = format!("{base}..refs/heads/{branch}");
        let out = self
            .git(["log", "--reverse", "--format=%H%x00%an%x00%s", &range])
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
        self.git(["diff", "--no-color", "--no-ext-diff", &range])
            .await
    }

    /// Merges `branch` into the branch checked out here, or changes nothing:
    /// a conflict is reported with its files and the merge is aborted.
    pub async fn merge(&self, branch: &str, message: &str) -> Result<MergeOutcome, GitError> {
        if self.bare {
            return Err(GitError::Bare(self.path.clone()));
        }
        let into = self
            .git(["symbolic-ref", "--short", "HEAD"])
            .await
            .unwrap_or_else(|_| "HEAD".to_owned());
        let status = self
            .git(["status", "--porcelain", "--untracked-files=no"])
            .await?;
        if !status.is_empty() {
            return Err(GitError::Dirty(self.path.clone()));
        }
        let head = format!("refs/heads/{branch}");
        if self
            .git(["merge-base", "--is-ancestor", &head, "HEAD"])
            .await
            .is_ok()
        {
            return Ok(MergeOutcome::UpToDate { into });
        }
        let mut args = Vec::new();
        if self.git(["config", "user.email"]).await.is_err() {
            args.extend([
                "-c",
                "user.name=agentyard",
                "-c",
                "user.email=agentyard@localhost",
            ]);
        }
        args.extend(["merge", "--no-ff", "--no-edit", "-m", message, &head]);
        match self.git(&args).await {
            Ok(_) => Ok(MergeOutcome::Merged {
                commit: self.git(["rev-parse", "HEAD"]).await?,
                into,
            }),
            Err(failure) => {
                let conflicted = self.git(["diff", "--name-only", "--diff-filter=U"]).await?;
                let files: Vec<String> = conflicted.lines().map(str::to_owned).collect();
                // Whatever happened, leave nothing half-merged behind.
                let _ = self.git(["merge", "--abort"]).await;
                if files.is_empty() {
                    return Err(failure);
                }
                Ok(MergeOutcome::Conflicts { into, files })
            }
        }
    }

    /// Makes (or opens) a bare repository at `path` owned by the yard, to
    /// fetch a remote into, its `HEAD` naming `default_branch` (as the
    /// remote's does), so that `yard spawn` on it needs no `--base`. A
    /// directory this made is removed again if making it failed.
    pub async fn init_bare(path: &Path, default_branch: &str) -> Result<Self, GitError> {
        if !tokio::fs::try_exists(path).await.unwrap_or(false) {
            tokio::fs::create_dir_all(path).await?;
            let initial = format!("--initial-branch={default_branch}");
            if let Err(e) = git(path, ["init", "--bare", "--quiet", initial.as_str()]).await {
                let _ = tokio::fs::remove_dir_all(path).await;
                return Err(e);
            }
        }
        Self::open(path).await
    }

    /// Fetches `branch` from the remote at `url` into the branch of the
    /// same name here (replacing what it held), with `auth`; the fetched
    /// commit. Nothing about the remote is written to the repository: its
    /// address is given each time and the credential only to this git.
    pub async fn fetch_from(
        &self,
        url: &str,
        auth: &HttpAuth,
        branch: &str,
    ) -> Result<String, GitError> {
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        self.remote(
            url,
            auth,
            &["fetch", "--quiet", "--no-tags", "--end-of-options"],
            &refspec,
        )
        .await?;
        self.resolve_commit(&format!("refs/heads/{branch}")).await
    }

    /// Pushes branch `branch` here to branch `to` at the remote at `url`,
    /// with `auth`, replacing what it held there.
    pub async fn push_to(
        &self,
        url: &str,
        auth: &HttpAuth,
        branch: &str,
        to: &str,
    ) -> Result<(), GitError> {
        let refspec = format!("+refs/heads/{branch}:refs/heads/{to}");
        self.remote(url, auth, &["push", "--quiet", "--porcelain"], &refspec)
            .await
    }

    /// `git <args> <url> <refspec>` with `auth` handed to git by a
    /// credential helper that reads it from this process's environment:
    /// never in an argument, the repository's configuration or the URL.
    async fn remote(
        &self,
        url: &str,
        auth: &HttpAuth,
        args: &[&str],
        refspec: &str,
    ) -> Result<(), GitError> {
        let mut all: Vec<std::ffi::OsString> = os_args(&[
            "-c",
            "credential.helper=",
            "-c",
            CREDENTIAL_HELPER,
            "-c",
            "credential.interactive=false",
        ]);
        all.extend(os_args(args));
        all.push(url.into());
        all.push(refspec.into());
        let output = self
            .owner
            .command(&self.path)
            .args(&all)
            .env("YARD_GIT_USERNAME", &auth.user)
            .env("YARD_GIT_PASSWORD", &auth.password)
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .output()
            .await?;
        if !output.status.success() {
            // The arguments hold no secret; what git says is cleaned of the
            // password all the same.
            let stderr = String::from_utf8_lossy(&output.stderr).replace(&auth.password, "***");
            let shown: Vec<std::ffi::OsString> = all.into_iter().skip(6).collect();
            return Err(failed(&shown, stderr.as_bytes()));
        }
        Ok(())
    }

    /// Deletes `branch` here, if it exists.
    pub async fn delete_branch(&self, branch: &str) -> Result<(), GitError> {
        let head = format!("refs/heads/{branch}");
        if self
            .git(["rev-parse", "--verify", "--quiet", &head])
            .await
            .is_ok()
        {
            self.git(["update-ref", "-d", &head]).await?;
        }
        Ok(())
    }
}
