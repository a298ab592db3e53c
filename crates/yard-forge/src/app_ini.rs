//! The `app.ini` of the Gitea the all-in-one container runs: rendered by a
//! pure function from [`AppIni`], written atomically with mode 0600.
//!
//! What it settles, so that nobody has to click through Gitea's installer
//! and nothing is left open by default: the install is locked
//! (`INSTALL_LOCK`), nobody can register, webhooks may go only to the
//! yard's own host (`ALLOWED_HOST_LIST` is that host, never `*`), and a
//! reverse proxy's user header is trusted only when trusted proxies are
//! named. The database is SQLite under the forge's work directory or a
//! PostgreSQL server whose credentials are passed in.
//!
//! Gitea's secrets (`SECRET_KEY`, which encrypts what Gitea stores,
//! `INTERNAL_TOKEN`, and the JWT signing secrets) must not change between
//! boots: [`IniSecrets::kept_from`] reads them back from the previous
//! file, and only the missing ones are generated. Writing them here also
//! means Gitea never needs to rewrite the file itself.
//!
//! Gitea reads the file with go-ini, where `#` and `;` start a comment and
//! quotes are stripped: every value that is not plainly safe is written
//! between backquotes (or triple double quotes when it holds a backquote),
//! which go-ini returns verbatim. A line break cannot be carried at all, so
//! a value holding one (or any other control character) is refused, naming
//! the key and never the value.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use reqwest::Url;

use crate::secret::{Secret, random_alphanumeric, random_base64url_32};

/// Everything `app.ini` is made from.
#[derive(Debug, Clone)]
pub struct AppIni {
    /// The forge's work directory (Gitea's `WORK_PATH`), absolute: the
    /// SQLite database, repositories and logs go under it.
    pub work_dir: PathBuf,
    /// The system user Gitea runs as (`RUN_USER`); Gitea refuses to start
    /// as anyone else. `None` leaves it to Gitea (the current user).
    pub run_user: Option<String>,
    pub database: Database,
    /// The address Gitea listens on (`HTTP_ADDR`), e.g. `127.0.0.1`.
    pub http_addr: String,
    /// The port Gitea listens on (`HTTP_PORT`).
    pub http_port: u16,
    /// The forge's public address (`ROOT_URL`), used in clone URLs and
    /// links: `http://` or `https://`.
    pub root_url: String,
    /// The yard's webhook address (`…/webhook/gitea`): its host, and only
    /// it, is what Gitea may send webhooks to.
    pub webhook_url: String,
    /// Proxies (IP addresses or CIDR ranges) whose user header Gitea may
    /// trust to sign a person in. Empty (the default) turns reverse-proxy
    /// authentication off.
    pub trusted_proxies: Vec<String>,
    pub secrets: IniSecrets,
}

/// Where Gitea keeps its data.
#[derive(Debug, Clone)]
pub enum Database {
    /// SQLite, in `<work_dir>/data/gitea.db`.
    Sqlite,
    Postgres(Postgres),
}

/// A PostgreSQL database for Gitea.
#[derive(Debug, Clone)]
pub struct Postgres {
    /// `host:port`, or the directory of a Unix socket.
    pub host: String,
    /// The database's name.
    pub name: String,
    pub user: String,
    pub password: Secret,
    pub ssl_mode: SslMode,
}

/// PostgreSQL's `sslmode`, as Gitea passes it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Gitea's own secrets, which must stay the same across boots.
#[derive(Debug, Clone)]
pub struct IniSecrets {
    /// `[security] SECRET_KEY`: encrypts secrets Gitea stores (2FA seeds,
    /// webhook secrets, …); changing it loses them.
    pub secret_key: Secret,
    /// `[security] INTERNAL_TOKEN`: Gitea's hooks and CLI talk to the
    /// server with it.
    pub internal_token: Secret,
    /// `[oauth2] JWT_SECRET`: signs OAuth2 tokens.
    pub oauth2_jwt_secret: Secret,
    /// `[server] LFS_JWT_SECRET`: signs Git LFS tokens.
    pub lfs_jwt_secret: Secret,
}

impl IniSecrets {
    /// New random secrets, in the forms Gitea generates them: 64 letters
    /// and digits for `SECRET_KEY` and `INTERNAL_TOKEN`, 32 bytes of
    /// unpadded URL-safe base64 for the JWT secrets.
    pub fn generate() -> Self {
        Self {
            secret_key: Secret::new(random_alphanumeric(64)),
            internal_token: Secret::new(random_alphanumeric(64)),
            oauth2_jwt_secret: Secret::new(random_base64url_32()),
            lfs_jwt_secret: Secret::new(random_base64url_32()),
        }
    }

    /// The secrets of an existing `app.ini` (`existing` is its text): each
    /// one found is kept, each one missing or empty is generated.
    pub fn kept_from(existing: &str) -> Self {
        let values = parse_ini(existing);
        let found = |section: &str, key: &str| {
            values
                .get(&(section.to_owned(), key.to_owned()))
                .filter(|v| !v.is_empty())
                .map(|v| Secret::new(v.clone()))
        };
        let fresh = Self::generate();
        Self {
            secret_key: found("security", "SECRET_KEY").unwrap_or(fresh.secret_key),
            internal_token: found("security", "INTERNAL_TOKEN").unwrap_or(fresh.internal_token),
            oauth2_jwt_secret: found("oauth2", "JWT_SECRET").unwrap_or(fresh.oauth2_jwt_secret),
            lfs_jwt_secret: found("server", "LFS_JWT_SECRET").unwrap_or(fresh.lfs_jwt_secret),
        }
    }
}

/// The owner to give the written file, for a Gitea that runs as its own
/// user (the file is 0600, so only that user may read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwner {
    pub uid: u32,
    pub gid: u32,
}

/// Why `app.ini` could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum IniError {
    /// A value app.ini cannot carry. The value is never shown: it may be a
    /// password.
    #[error(
        "the value for {key} holds a line break or another control character, which app.ini cannot carry; set it without one"
    )]
    ControlCharacter { key: String },
    /// A setting that is not usable; `what` names it, the value is not
    /// repeated (an address may carry credentials).
    #[error("{what} is not usable: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn invalid(what: &str, reason: &str) -> IniError {
    IniError::Invalid {
        what: what.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The secrets to render: those of the `app.ini` at `path` if there is
/// one, generated ones otherwise (see [`IniSecrets::kept_from`]).
pub fn load_ini_secrets(path: &Path) -> Result<IniSecrets, IniError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(IniSecrets::kept_from(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IniSecrets::generate()),
        Err(source) => Err(IniError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        }),
    }
}

/// The host Gitea may send webhooks to: the host of the yard's webhook
/// URL, as `ALLOWED_HOST_LIST` takes it (no port, no brackets).
pub fn allowed_webhook_host(webhook_url: &str) -> Result<String, IniError> {
    const WHAT: &str = "the yard's webhook URL";
    let url = http_url(webhook_url, WHAT)?;
    let host = bare_host(&url).ok_or_else(|| invalid(WHAT, "it has no host"))?;
    if host.is_empty() || host.contains(['*', '?', '[', ']', ',', ' ']) {
        return Err(invalid(
            WHAT,
            "its host cannot be matched exactly by Gitea's ALLOWED_HOST_LIST",
        ));
    }
    Ok(host)
}

/// A URL's host without the brackets of an IPv6 address.
fn bare_host(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(host.to_owned())
}

/// An absolute `http(s)://` URL without credentials in it.
fn http_url(text: &str, what: &str) -> Result<Url, IniError> {
    let url = Url::parse(text.trim())
        .map_err(|_| invalid(what, "it is not an absolute http:// or https:// address"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(invalid(what, "use an http:// or https:// address"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(what, "leave credentials out of the address"));
    }
    Ok(url)
}

/// A trusted proxy: an IP address or a CIDR range narrower than
/// everything.
fn check_proxy(proxy: &str) -> Result<(), IniError> {
    const WHAT: &str = "a trusted proxy";
    let (addr, prefix) = match proxy.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (proxy, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        invalid(
            WHAT,
            "give an IP address or a CIDR range such as 10.0.0.0/8",
        )
    })?;
    if let Some(prefix) = prefix {
        let bits: u8 = prefix
            .parse()
            .map_err(|_| invalid(WHAT, "the range's prefix length is not a number"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(invalid(WHAT, "the range's prefix length is too long"));
        }
        if bits == 0 {
            return Err(invalid(
                WHAT,
                "a /0 range trusts every address, which lets anyone sign in as anyone; name the proxy",
            ));
        }
    }
    Ok(())
}

/// The text of `app.ini` for `ini`. Pure: the same input gives the same
/// text.
pub fn render_app_ini(ini: &AppIni) -> Result<String, IniError> {
    if !ini.work_dir.is_absolute() {
        return Err(invalid(
            "the forge's work directory",
            "give an absolute path",
        ));
    }
    let work = ini
        .work_dir
        .to_str()
        .ok_or_else(|| invalid("the forge's work directory", "its path is not UTF-8"))?
        .trim_end_matches('/');
    let work = if work.is_empty() { "/" } else { work };
    let under = |sub: &str| format!("{}/{sub}", work.trim_end_matches('/'));

    let mut root_url = http_url(&ini.root_url, "the forge's ROOT_URL")?;
    if !root_url.path().ends_with('/') {
        let path = format!("{}/", root_url.path());
        root_url.set_path(&path);
    }
    root_url.set_query(None);
    root_url.set_fragment(None);
    let domain =
        bare_host(&root_url).ok_or_else(|| invalid("the forge's ROOT_URL", "it has no host"))?;
    let allowed_host = allowed_webhook_host(&ini.webhook_url)?;
    if ini.http_addr.trim().is_empty() {
        return Err(invalid(
            "the forge's HTTP_ADDR",
            "give an address such as 127.0.0.1",
        ));
    }
    for proxy in &ini.trusted_proxies {
        check_proxy(proxy.trim())?;
    }

    let mut w = Writer::default();
    w.comment("Gitea's configuration, made by the yard on every boot: edits here are replaced.");
    w.comment("SECRET_KEY, INTERNAL_TOKEN and the JWT secrets are kept from the previous file.");
    w.key("", "APP_NAME", "agentyard forge")?;
    w.key("", "RUN_MODE", "prod")?;
    if let Some(user) = &ini.run_user {
        w.key("", "RUN_USER", user)?;
    }
    w.key("", "WORK_PATH", work)?;

    w.section("server");
    w.key("server", "PROTOCOL", "http")?;
    w.key("server", "HTTP_ADDR", ini.http_addr.trim())?;
    w.key("server", "HTTP_PORT", &ini.http_port.to_string())?;
    w.key("server", "ROOT_URL", root_url.as_str())?;
    w.key("server", "DOMAIN", &domain)?;
    w.key("server", "APP_DATA_PATH", &under("data"))?;
    // Agents and the yard use Git over HTTP with tokens.
    w.key("server", "DISABLE_SSH", "true")?;
    w.key("server", "START_SSH_SERVER", "false")?;
    w.key("server", "OFFLINE_MODE", "true")?;
    w.key("server", "LFS_START_SERVER", "false")?;
    w.key(
        "server",
        "LFS_JWT_SECRET",
        ini.secrets.lfs_jwt_secret.expose(),
    )?;

    w.section("database");
    match &ini.database {
        Database::Sqlite => {
            w.key("database", "DB_TYPE", "sqlite3")?;
            w.key("database", "PATH", &under("data/gitea.db"))?;
        }
        Database::Postgres(pg) => {
            for (what, value) in [
                ("host", &pg.host),
                ("database name", &pg.name),
                ("user", &pg.user),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(
                        &format!("the forge's PostgreSQL {what}"),
                        "it is empty",
                    ));
                }
            }
            w.key("database", "DB_TYPE", "postgres")?;
            w.key("database", "HOST", &pg.host)?;
            w.key("database", "NAME", &pg.name)?;
            w.key("database", "USER", &pg.user)?;
            w.key("database", "PASSWD", pg.password.expose())?;
            w.key("database", "SSL_MODE", pg.ssl_mode.as_str())?;
        }
    }

    w.section("repository");
    w.key("repository", "ROOT", &under("repositories"))?;
    w.key("repository", "DEFAULT_BRANCH", "main")?;

    w.section("security");
    w.key("security", "INSTALL_LOCK", "true")?;
    w.key("security", "SECRET_KEY", ini.secrets.secret_key.expose())?;
    w.key(
        "security",
        "INTERNAL_TOKEN",
        ini.secrets.internal_token.expose(),
    )?;
    let proxies: Vec<&str> = ini
        .trusted_proxies
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    if !proxies.is_empty() {
        w.key(
            "security",
            "REVERSE_PROXY_TRUSTED_PROXIES",
            &proxies.join(","),
        )?;
    }

    w.section("service");
    w.key("service", "DISABLE_REGISTRATION", "true")?;
    w.key("service", "ALLOW_ONLY_EXTERNAL_REGISTRATION", "false")?;
    let proxy_auth = if proxies.is_empty() { "false" } else { "true" };
    w.key("service", "ENABLE_REVERSE_PROXY_AUTHENTICATION", proxy_auth)?;
    // The API is for tokens only, whoever is in front.
    w.key(
        "service",
        "ENABLE_REVERSE_PROXY_AUTHENTICATION_API",
        "false",
    )?;
    w.key("service", "ENABLE_REVERSE_PROXY_AUTO_REGISTRATION", "false")?;

    w.section("openid");
    w.key("openid", "ENABLE_OPENID_SIGNIN", "false")?;
    w.key("openid", "ENABLE_OPENID_SIGNUP", "false")?;

    w.section("webhook");
    w.key("webhook", "ALLOWED_HOST_LIST", &allowed_host)?;

    w.section("oauth2");
    w.key(
        "oauth2",
        "JWT_SECRET",
        ini.secrets.oauth2_jwt_secret.expose(),
    )?;

    w.section("session");
    let secure = if root_url.scheme() == "https" {
        "true"
    } else {
        "false"
    };
    w.key("session", "COOKIE_SECURE", secure)?;

    w.section("log");
    w.key("log", "ROOT_PATH", &under("log"))?;
    w.key("log", "MODE", "console")?;
    w.key("log", "LEVEL", "Info")?;
    Ok(w.out)
}

/// Writes `contents` to `path` atomically (a temporary file in the same
/// directory, synced, then renamed over it) with mode 0600, owned by
/// `owner` when given (which needs the right to change owners).
pub fn write_app_ini(
    path: &Path,
    contents: &str,
    owner: Option<FileOwner>,
) -> Result<(), IniError> {
    let io_error = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| IniError::Io {
            action,
            path,
            source,
        }
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| invalid("the app.ini path", "it names no file"))?
        .to_string_lossy()
        .into_owned();
    let temporary = dir.join(format!(".{name}.{}.tmp", random_alphanumeric(12)));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io_error("creating", &temporary))?;
        if let Some(owner) = owner {
            std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid))
                .map_err(io_error("changing the owner of", &temporary))?;
        }
        file.write_all(contents.as_bytes())
            .map_err(io_error("writing", &temporary))?;
        file.sync_all().map_err(io_error("syncing", &temporary))?;
        fs::rename(&temporary, path).map_err(io_error("replacing", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
        return written;
    }
    // The rename itself survives a crash once the directory is synced.
    if let Ok(dir) = fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Lines of INI, each value checked and quoted for go-ini.
#[derive(Debug, Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.out, "; {text}");
    }

    fn section(&mut self, name: &str) {
        let _ = write!(self.out, "\n[{name}]\n");
    }

    fn key(&mut self, section: &str, key: &str, value: &str) -> Result<(), IniError> {
        if value.chars().any(char::is_control) {
            let key = if section.is_empty() {
                key.to_owned()
            } else {
                format!("[{section}] {key}")
            };
            return Err(IniError::ControlCharacter { key });
        }
        let _ = writeln!(self.out, "{key} = {}", quote(value));
        Ok(())
    }
}

/// `value` as go-ini reads it back verbatim: bare when it holds only
/// characters with no meaning to the parser, else between backquotes, or
/// between triple double quotes when it holds a backquote (go-ini takes
/// everything up to the last closing quote, so inner quotes are safe).
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@+=,".contains(c));
    if plain {
        value.to_owned()
    } else if !value.contains('`') {
        format!("`{value}`")
    } else {
        format!("\"\"\"{value}\"\"\"")
    }
}

/// An INI file's values by (section, key), section names in lower case
/// (`""` before the first section), read as go-ini with Gitea's options
/// reads them: comments after `#` or `;` in bare values, backquoted and
/// triple-quoted values verbatim, surrounding quotes removed.
fn parse_ini(text: &str) -> BTreeMap<(String, String), String> {
    let mut values = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if let Some((name, _)) = rest.split_once(']') {
                section = name.trim().to_lowercase();
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        values.insert((section.clone(), key.trim().to_owned()), unquote(value));
    }
    values
}

fn unquote(raw: &str) -> String {
    let value = raw.trim_start();
    for quote in ["\"\"\"", "`"] {
        if let Some(rest) = value.strip_prefix(quote)
            && (quote != "\"\"\"" || value.len() > 3)
            && let Some(end) = rest.rfind(quote)
        {
            return rest[..end].to_owned();
        }
    }
    let mut value = value.trim();
    if let Some(at) = value.find(['#', ';']) {
        value = value[..at].trim();
    }
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return value[1..value.len() - 1].to_owned();
        }
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config() -> AppIni {
        AppIni {
            work_dir: PathBuf::from("/data/gitea"),
            run_user: Some("git".into()),
            database: Database::Sqlite,
            http_addr: "127.0.0.1".into(),
            http_port: 3000,
            root_url: "http://forge.example:3000".into(),
            webhook_url: "http://yard.internal:8080/webhook/gitea".into(),
            trusted_proxies: Vec::new(),
            secrets: IniSecrets::generate(),
        }
    }

    fn value(text: &str, section: &str, key: &str) -> Option<String> {
        parse_ini(text)
            .get(&(section.to_owned(), key.to_owned()))
            .cloned()
    }

    #[test]
    fn the_install_is_locked_and_registration_is_off() {
        let text = render_app_ini(&config()).unwrap();
        assert_eq!(
            value(&text, "security", "INSTALL_LOCK").as_deref(),
            Some("true")
        );
        assert_eq!(
            value(&text, "service", "DISABLE_REGISTRATION").as_deref(),
            Some("true")
        );
        assert_eq!(
            value(&text, "service", "ENABLE_REVERSE_PROXY_AUTHENTICATION").as_deref(),
            Some("false")
        );
        assert_eq!(
            value(&text, "security", "REVERSE_PROXY_TRUSTED_PROXIES"),
            None
        );
    }

    #[test]
    fn webhooks_may_go_only_to_the_yards_own_host() {
        let text = render_app_ini(&config()).unwrap();
        let allowed = value(&text, "webhook", "ALLOWED_HOST_LIST").unwrap();
        assert_eq!(allowed, "yard.internal");
        assert!(!text.contains('*'), "{text}");

        let mut ipv6 = config();
        ipv6.webhook_url = "http://[::1]:8080/webhook/gitea".into();
        let text = render_app_ini(&ipv6).unwrap();
        assert_eq!(
            value(&text, "webhook", "ALLOWED_HOST_LIST").as_deref(),
            Some("::1")
        );
    }

    #[test]
    fn a_webhook_url_without_a_usable_host_is_refused() {
        for url in [
            "not a url",
            "ftp://yard/webhook",
            "http://user:pass@yard/webhook",
        ] {
            let mut bad = config();
            bad.webhook_url = url.into();
            let error = render_app_ini(&bad).unwrap_err().to_string();
            assert!(error.contains("webhook URL"), "{error}");
            assert!(
                !error.contains("pass@"),
                "the address is not repeated: {error}"
            );
        }
    }

    #[test]
    fn server_paths_and_sqlite_live_under_the_work_dir() {
        let text = render_app_ini(&config()).unwrap();
        assert_eq!(
            value(&text, "", "WORK_PATH").as_deref(),
            Some("/data/gitea")
        );
        assert_eq!(value(&text, "", "RUN_USER").as_deref(), Some("git"));
        assert_eq!(
            value(&text, "server", "HTTP_ADDR").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(value(&text, "server", "HTTP_PORT").as_deref(), Some("3000"));
        assert_eq!(
            value(&text, "server", "ROOT_URL").as_deref(),
            Some("http://forge.example:3000/")
        );
        assert_eq!(
            value(&text, "server", "DOMAIN").as_deref(),
            Some("forge.example")
        );
        assert_eq!(
            value(&text, "database", "DB_TYPE").as_deref(),
            Some("sqlite3")
        );
        assert_eq!(
            value(&text, "database", "PATH").as_deref(),
            Some("/data/gitea/data/gitea.db")
        );
        assert_eq!(
            value(&text, "repository", "ROOT").as_deref(),
            Some("/data/gitea/repositories")
        );
        assert_eq!(
            value(&text, "log", "ROOT_PATH").as_deref(),
            Some("/data/gitea/log")
        );
        assert_eq!(
            value(&text, "session", "COOKIE_SECURE").as_deref(),
            Some("false")
        );
    }

    #[test]
    fn postgres_credentials_survive_ini_quoting() {
        let mut ini = config();
        let password = "p#ss;w\"or`d = '1' ";
        ini.database = Database::Postgres(Postgres {
            host: "db:5432".into(),
            name: "gitea".into(),
            user: "gitea;user".into(),
            password: Secret::new(password),
            ssl_mode: SslMode::Require,
        });
        let text = render_app_ini(&ini).unwrap();
        assert_eq!(
            value(&text, "database", "DB_TYPE").as_deref(),
            Some("postgres")
        );
        assert_eq!(value(&text, "database", "HOST").as_deref(), Some("db:5432"));
        assert_eq!(
            value(&text, "database", "USER").as_deref(),
            Some("gitea;user")
        );
        assert_eq!(
            value(&text, "database", "PASSWD").as_deref(),
            Some(password)
        );
        assert_eq!(
            value(&text, "database", "SSL_MODE").as_deref(),
            Some("require")
        );
    }

    #[test]
    fn quoting_round_trips_awkward_values() {
        for value in [
            "plain",
            "",
            " leading and trailing ",
            "#hash",
            "semi;colon",
            "`back`quote`",
            "\"\"\"triple\"\"\"",
            "'single'",
            "\"double\"",
            "ends with a quote\"",
        ] {
            let text = format!("[s]\nK = {}\n", quote(value));
            assert_eq!(
                parse_ini(&text)[&("s".to_owned(), "K".to_owned())],
                value,
                "{text}"
            );
        }
    }

    #[test]
    fn values_with_line_breaks_are_refused_without_showing_them() {
        let mut ini = config();
        ini.database = Database::Postgres(Postgres {
            host: "db".into(),
            name: "gitea".into(),
            user: "gitea".into(),
            password: Secret::new("secret\n[security]\nINSTALL_LOCK = false"),
            ssl_mode: SslMode::Disable,
        });
        let error = render_app_ini(&ini).unwrap_err();
        assert!(
            matches!(error, IniError::ControlCharacter { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("[database] PASSWD"), "{message}");
        assert!(!message.contains("secret"), "{message}");

        for field in ["user", "host", "addr"] {
            let mut ini = config();
            match field {
                "user" => ini.run_user = Some("git\rroot".into()),
                "host" => {
                    ini.database = Database::Postgres(Postgres {
                        host: "db\n".into(),
                        name: "gitea".into(),
                        user: "gitea".into(),
                        password: Secret::new("x"),
                        ssl_mode: SslMode::Disable,
                    })
                }
                _ => ini.http_addr = "0.0.0.0\nHTTP_PORT = 1".into(),
            }
            assert!(
                matches!(render_app_ini(&ini), Err(IniError::ControlCharacter { .. })),
                "{field}"
            );
        }
    }

    #[test]
    fn secrets_are_kept_across_renders() {
        let first = render_app_ini(&config()).unwrap();
        let mut again = config();
        again.secrets = IniSecrets::kept_from(&first);
        let second = render_app_ini(&again).unwrap();
        for (section, key) in [
            ("security", "SECRET_KEY"),
            ("security", "INTERNAL_TOKEN"),
            ("oauth2", "JWT_SECRET"),
            ("server", "LFS_JWT_SECRET"),
        ] {
            let before = value(&first, section, key).unwrap();
            assert!(before.len() >= 43, "{key}");
            assert_eq!(value(&second, section, key).unwrap(), before, "{key}");
        }
        assert_eq!(first, second, "the same input renders the same text");
    }

    #[test]
    fn missing_secrets_are_generated_and_found_ones_kept() {
        let old = "[security]\nSECRET_KEY = `kept-key`\nINTERNAL_TOKEN =\n";
        let secrets = IniSecrets::kept_from(old);
        assert_eq!(secrets.secret_key.expose(), "kept-key");
        assert_eq!(secrets.internal_token.expose().len(), 64);
        assert_eq!(secrets.oauth2_jwt_secret.expose().len(), 43);
        let other = IniSecrets::generate();
        assert_ne!(other.secret_key.expose(), secrets.internal_token.expose());
    }

    #[test]
    fn trusted_proxies_turn_reverse_proxy_authentication_on() {
        let mut ini = config();
        ini.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
        let text = render_app_ini(&ini).unwrap();
        assert_eq!(
            value(&text, "security", "REVERSE_PROXY_TRUSTED_PROXIES").as_deref(),
            Some("10.0.0.0/8,::1")
        );
        assert_eq!(
            value(&text, "service", "ENABLE_REVERSE_PROXY_AUTHENTICATION").as_deref(),
            Some("true")
        );
        assert_eq!(
            value(&text, "service", "ENABLE_REVERSE_PROXY_AUTHENTICATION_API").as_deref(),
            Some("false")
        );
        for bad in ["*", "0.0.0.0/0", "::/0", "proxy.example", "10.0.0.0/33"] {
            ini.trusted_proxies = vec![bad.into()];
            assert!(
                matches!(render_app_ini(&ini), Err(IniError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_relative_work_dir_is_refused() {
        let mut ini = config();
        ini.work_dir = PathBuf::from("data/gitea");
        assert!(render_app_ini(&ini).is_err());
    }

    #[test]
    fn the_file_is_written_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.ini");
        write_app_ini(&path, "A = 1\n", None).unwrap();
        write_app_ini(&path, "A = 2\n", None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "A = 2\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");

        let kept = load_ini_secrets(&dir.path().join("missing.ini")).unwrap();
        assert_eq!(kept.secret_key.expose().len(), 64);
        let error = write_app_ini(&dir.path().join("no/such/dir/app.ini"), "", None).unwrap_err();
        assert!(error.to_string().contains("creating"), "{error}");
    }
}
