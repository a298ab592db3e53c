//! The data directory: the store file, the admin token, the key that seals
//! the yard's secret settings, the instance id, the address the daemon
//! listens on and the answer log.
//!
//! Secrets are written with mode 0600 through a temporary file and a rename,
//! so a reader never sees half a token and nobody else can read one. A data
//! directory made by an older version, or by hand, is tightened at start
//! ([`DataDir::tighten`]): the directory 0700, the store and secrets 0600.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File holding the admin token.
const ADMIN_TOKEN: &str = "admin-token";
/// File holding the key that seals secret settings.
const CONFIG_KEY: &str = "config-key";
/// File holding this yard's instance id.
const INSTANCE_ID: &str = "instance-id";
/// File holding the address the daemon listens on, once it does.
const LISTEN_ADDR: &str = "listen-addr";
/// File keeping answers until the store has them (see `answer_log`).
const ANSWER_LOG: &str = "answers.log";

/// The yard's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// `$XDG_DATA_HOME/agentyard`, else `~/.local/share/agentyard`, else
    /// `./agentyard-data`.
    pub fn default_path() -> PathBuf {
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("agentyard");
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/share/agentyard"),
            None => PathBuf::from("agentyard-data"),
        }
    }

    /// Uses `path`, creating it (mode 0700) if it does not exist.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Self { path })
    }

    /// Uses `path` as it is, creating nothing: for clients that only read.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where answers wait for the store; see [`crate::Questions::with_answer_log`].
    pub fn answer_log_path(&self) -> PathBuf {
        self.path.join(ANSWER_LOG)
    }

    pub fn admin_token_path(&self) -> PathBuf {
        self.path.join(ADMIN_TOKEN)
    }

    /// The admin token, if one was written.
    pub fn read_admin_token(&self) -> io::Result<Option<String>> {
        match fs::read_to_string(self.admin_token_path()) {
            Ok(token) => Ok(Some(token.trim().to_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the admin token file (mode 0600).
    pub fn write_admin_token(&self, token: &str) -> io::Result<PathBuf> {
        self.write_private(ADMIN_TOKEN, &format!("{token}\n"))
    }

    /// Where the key that seals secret settings is kept.
    pub fn config_key_path(&self) -> PathBuf {
        self.path.join(CONFIG_KEY)
    }

    /// The text of the config key file, made from `generate` (mode 0600)
    /// the first time. The file is made once and never replaced: it is
    /// written whole under a temporary name and linked into place only if
    /// no file is there yet, so of two daemons starting at once on one
    /// directory, both end with the first one's key, and nobody ever reads
    /// half of one.
    pub fn config_key(&self, generate: impl FnOnce() -> String) -> io::Result<String> {
        let path = self.config_key_path();
        match fs::read_to_string(&path) {
            Ok(text) => return Ok(text.trim().to_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let text = generate();
        let temp = self
            .path
            .join(format!(".{CONFIG_KEY}.{}", uuid::Uuid::new_v4().simple()));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        let written = file
            .write_all(format!("{text}\n").as_bytes())
            .and_then(|()| file.sync_all());
        let linked = written.and_then(|()| fs::hard_link(&temp, &path));
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok(text),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Ok(fs::read_to_string(&path)?.trim().to_owned())
            }
            Err(e) => Err(e),
        }
    }

    /// This yard's instance id, made on first use. It names and labels
    /// everything the yard creates, so two yards on one engine never touch
    /// each other's containers.
    pub fn instance_id(&self) -> io::Result<String> {
        let path = self.path.join(INSTANCE_ID);
        match fs::read_to_string(&path) {
            Ok(id) => {
                let id = id.trim();
                let valid = !id.is_empty()
                    && id.len() <= 32
                    && id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
                if !valid {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} holds {id:?}, which is not an instance id (1 to 32 of a-z and 0-9)",
                            path.display()
                        ),
                    ));
                }
                Ok(id.to_owned())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
                self.write_private(INSTANCE_ID, &format!("{id}\n"))?;
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }

    /// Records the address the daemon listens on, for scripts and tests.
    pub fn write_listen_addr(&self, addr: &str) -> io::Result<()> {
        self.write_private(LISTEN_ADDR, &format!("{addr}\n"))
            .map(drop)
    }

    /// Removes the listen address on a clean exit.
    pub fn clear_listen_addr(&self) {
        let _ = fs::remove_file(self.path.join(LISTEN_ADDR));
    }

    /// Takes access away from everyone but the yard's user: the directory
    /// and its `checkouts` become 0700, the store (with its SQLite
    /// companions) and the secret files (the admin token, the config key)
    /// 0600. Returns what it changed, for
    /// the start-up log.
    pub fn tighten(&self) -> io::Result<Vec<PathBuf>> {
        let mut changed = Vec::new();
        let mut restrict = |path: PathBuf, mode: u32| -> io::Result<()> {
            let current = match fs::symlink_metadata(&path) {
                Ok(meta) if !meta.file_type().is_symlink() => meta.permissions().mode() & 0o777,
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            if current & !mode != 0 {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
                changed.push(path);
            }
            Ok(())
        };
        restrict(self.path.clone(), 0o700)?;
        restrict(self.path.join("checkouts"), 0o700)?;
        let store = yard_store::SQLITE_FILE;
        for name in [
            store.to_owned(),
            format!("{store}-wal"),
            format!("{store}-shm"),
            ADMIN_TOKEN.to_owned(),
            CONFIG_KEY.to_owned(),
            INSTANCE_ID.to_owned(),
            LISTEN_ADDR.to_owned(),
            ANSWER_LOG.to_owned(),
        ] {
            restrict(self.path.join(name), 0o600)?;
        }
        Ok(changed)
    }

    /// Writes `name` atomically with mode 0600.
    fn write_private(&self, name: &str, contents: &str) -> io::Result<PathBuf> {
        let target = self.path.join(name);
        let temp = self.path.join(format!(".{name}.{}", std::process::id()));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, &target)?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loose_data_directory_is_tightened_and_says_what_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path().join("data")).unwrap();
        let store = dir.path().join(yard_store::SQLITE_FILE);
        fs::write(&store, "").unwrap();
        fs::write(dir.path().join("policy.toml"), "").unwrap();
        for (path, mode) in [(dir.path(), 0o755), (store.as_path(), 0o644)] {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        }
        let changed = dir.tighten().unwrap();
        assert_eq!(changed, vec![dir.path().to_owned(), store.clone()]);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(dir.path()), mode(&store)), (0o700, 0o600));
        assert_eq!(
            dir.tighten().unwrap(),
            Vec::<PathBuf>::new(),
            "once is enough"
        );
    }

    #[test]
    fn secrets_are_private_and_ids_stable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path().join("nested/data")).unwrap();
        let path = dir.write_admin_token("yard_abc").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(dir.read_admin_token().unwrap().as_deref(), Some("yard_abc"));
        let dir_mode = fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);

        let id = dir.instance_id().unwrap();
        assert_eq!(id.len(), 10);
        assert_eq!(dir.instance_id().unwrap(), id);
    }

    #[test]
    fn a_damaged_instance_id_is_refused_with_the_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        fs::write(tmp.path().join(INSTANCE_ID), "Not/An Id").unwrap();
        let err = dir.instance_id().unwrap_err().to_string();
        assert!(err.contains("not an instance id"), "{err}");
    }

    #[test]
    fn a_missing_token_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(DataDir::at(tmp.path()).read_admin_token().unwrap(), None);
    }
}
