//! The relay's token: from `YARD_RELAY_TOKEN` when it is set, otherwise
//! kept in the data directory, made on first use.
//!
//! The file is written whole under a temporary name and then linked into
//! place, which fails if another process got there first: two relays
//! starting together (DevTools and noVNC) end up with the same token, and
//! none ever reads a half-written file. It is readable by its owner only.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "relay-token";

/// The relay's token: `env_value` (the value of `YARD_RELAY_TOKEN`) when it
/// is set and not blank, else the contents of `<data_dir>/relay-token`,
/// which is made with 32 random bytes in hex (mode 0600) when it does not
/// exist yet. An existing file that others may read is tightened to 0600.
pub fn relay_token(env_value: Option<String>, data_dir: &Path) -> io::Result<String> {
    if let Some(token) = env_value {
        let token = token.trim();
        if !token.is_empty() {
            return Ok(token.to_owned());
        }
    }
    let path = data_dir.join(TOKEN_FILE);
    if !data_dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)?;
    }
    match read_token(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        read => return read,
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let staging = data_dir.join(format!(
        ".{TOKEN_FILE}.{}.tmp",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)?;
        file.write_all(token.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| fs::hard_link(&staging, &path));
    // The staging name goes either way; the token lives on under `path`.
    let _ = fs::remove_file(&staging);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "made a new relay token");
            Ok(token)
        }
        // Another process made it between our look and our link.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_token(&path),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot write the relay token to {}: {e}", path.display()),
        )),
    }
}

/// Reads an existing token file, tightening its mode to 0600 first.
fn read_token(path: &Path) -> io::Result<String> {
    let metadata = fs::symlink_metadata(path)?;
    if !metadata.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a regular file; remove it to have a new token made, or set \
                 YARD_RELAY_TOKEN",
                path.display()
            ),
        ));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{} may be read by others (mode {mode:o}) and cannot be made private: {e}; \
                     run chmod 600 on it",
                    path.display()
                ),
            )
        })?;
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the relay token file could be read by others; it is now 0600");
    }
    let token = fs::read_to_string(path)?.trim().to_owned();
    if token.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is empty; remove it to have a new token made, or set YARD_RELAY_TOKEN",
                path.display()
            ),
        ));
    }
    Ok(token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_token_is_random_hex_in_a_private_file_and_stays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let first = relay_token(None, dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        let path = dir.path().join(TOKEN_FILE);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(relay_token(None, dir.path()).unwrap(), first);
        assert_eq!(relay_token(Some(String::new()), dir.path()).unwrap(), first);
        assert_eq!(
            relay_token(Some("  ".to_owned()), dir.path()).unwrap(),
            first
        );
        // Nothing is left under a staging name.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        let other = tempfile::tempdir().unwrap();
        assert_ne!(relay_token(None, other.path()).unwrap(), first);
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let from_file = relay_token(None, dir.path()).unwrap();
        let from_env = relay_token(Some(" chosen ".to_owned()), dir.path()).unwrap();
        assert_eq!(from_env, "chosen");
        assert_ne!(from_env, from_file);
        // Setting the variable does not make or change a file.
        let fresh = tempfile::tempdir().unwrap();
        relay_token(Some("chosen".to_owned()), fresh.path()).unwrap();
        assert!(!fresh.path().join(TOKEN_FILE).exists());
    }

    #[test]
    fn a_readable_token_file_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        fs::write(&path, "kept-token\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(relay_token(None, dir.path()).unwrap(), "kept-token");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn an_empty_token_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        fs::write(&path, "\n").unwrap();
        let error = relay_token(None, dir.path()).unwrap_err();
        assert!(error.to_string().contains("remove it"), "{error}");
    }

    #[test]
    fn a_missing_data_directory_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        relay_token(None, &data).unwrap();
        assert_eq!(mode(&data), 0o700);
    }

    #[test]
    fn relays_starting_together_share_one_token() {
        let dir = tempfile::tempdir().unwrap();
        let tokens: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| relay_token(None, dir.path()).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    }
}
