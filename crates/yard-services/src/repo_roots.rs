//! Which repositories people may put agents on: those inside the yard's
//! repository roots (`YARD_REPO_ROOTS`).
//!
//! The yard runs next to everyone's repositories, often as root, and an
//! agent can read and change whatever it is spawned on. So a path from a
//! request is resolved the way the file system will (symlinks and `..`
//! followed) before it is compared with the roots, and a path that
//! resolves outside them is refused with the same words whether or not it
//! exists: the answer tells nothing about the rest of the machine.

use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoPathError {
    #[error(
        "say which repository: repo is the absolute path of a git repository on the yard's machine"
    )]
    Missing,
    #[error("the repository must be an absolute path on the yard's machine, not {0:?}")]
    Relative(String),
    #[error(
        "{path:?} is not inside the yard's repository roots ({roots}); put the repository there, or ask an admin to add its directory to YARD_REPO_ROOTS"
    )]
    Outside { path: String, roots: String },
}

/// The directories repositories must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRoots {
    roots: Vec<PathBuf>,
    /// Whether admins are held to the roots too.
    strict: bool,
}

impl RepoRoots {
    pub fn new(roots: Vec<PathBuf>, strict: bool) -> Self {
        Self { roots, strict }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Where `requested` really is, if the caller may spawn on it: inside a
    /// root, or anywhere for an admin unless the roots are strict.
    pub fn permit(&self, requested: &Path, admin: bool) -> Result<PathBuf, RepoPathError> {
        if !requested.is_absolute() {
            return Err(RepoPathError::Relative(requested.display().to_string()));
        }
        let resolved = resolve(requested);
        if admin && !self.strict {
            return Ok(resolved.unwrap_or_else(|| requested.to_owned()));
        }
        match resolved {
            Some(path) if self.contains(&path) => Ok(path),
            _ => Err(self.outside(requested)),
        }
    }

    /// Whether `resolved` (a path with symlinks already followed) is inside
    /// a root. For checking where git found a repository's top and its git
    /// directory, which may lie above the path asked for.
    pub fn holds(&self, resolved: &Path, admin: bool) -> Result<(), RepoPathError> {
        if (admin && !self.strict) || self.contains(resolved) {
            Ok(())
        } else {
            Err(self.outside(resolved))
        }
    }

    fn contains(&self, resolved: &Path) -> bool {
        self.roots.iter().any(|root| {
            let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
            resolved.starts_with(&root)
        })
    }

    fn outside(&self, path: &Path) -> RepoPathError {
        RepoPathError::Outside {
            path: path.display().to_string(),
            roots: self
                .roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        }
    }
}

/// `path` with every symlink and `..` resolved: the deepest existing
/// ancestor, canonicalized, with the rest appended. `None` when the part
/// that does not exist climbs with `..` (it could end up anywhere).
fn resolve(path: &Path) -> Option<PathBuf> {
    if let Ok(found) = std::fs::canonicalize(path) {
        return Some(found);
    }
    let mut existing = path.to_owned();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?.to_owned();
    }
    let mut resolved = std::fs::canonicalize(&existing).ok()?;
    for part in rest.iter().rev() {
        match Path::new(part).components().next() {
            Some(Component::Normal(_)) => resolved.push(part),
            _ => return None,
        }
    }
    Some(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_resolved_before_they_are_compared() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repos");
        let outside = tmp.path().join("secret");
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let roots = RepoRoots::new(vec![root.clone()], false);
        let real_root = root.canonicalize().unwrap();

        assert_eq!(
            roots.permit(&root.join("app"), false),
            Ok(real_root.join("app"))
        );
        assert_eq!(
            roots.permit(&root.join("new/repo"), false),
            Ok(real_root.join("new/repo")),
            "missing but inside: git says it does not exist"
        );
        for escape in [
            root.join("link"),
            root.join("link/x"),
            root.join("../secret"),
            root.join("nothing/../../secret"),
            PathBuf::from("/etc"),
            PathBuf::from("/no/such/place"),
            outside.clone(),
        ] {
            let e = roots.permit(&escape, false).unwrap_err();
            assert!(
                matches!(e, RepoPathError::Outside { .. }),
                "{escape:?}: {e}"
            );
        }
        assert!(matches!(
            roots.permit(Path::new("repos/app"), false),
            Err(RepoPathError::Relative(_))
        ));
        assert!(roots.permit(&outside, true).is_ok(), "admins go anywhere");
        let strict = RepoRoots::new(vec![root], true);
        assert!(strict.permit(&outside, true).is_err(), "unless strict");
    }

    #[test]
    fn existing_and_missing_outside_paths_get_the_same_answer() {
        let roots = RepoRoots::new(vec![PathBuf::from("/srv/repos")], false);
        let words = |path: &str| {
            roots
                .permit(Path::new(path), false)
                .unwrap_err()
                .to_string()
                .replace(path, "PATH")
        };
        assert_eq!(words("/etc"), words("/no-such-dir-here"));
    }
}
