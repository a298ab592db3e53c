//! A real PostgreSQL server for the test process, and a fresh database per test.
//!
//! The server is started once per test process, on a Unix socket in a
//! temporary directory (no TCP port to collide with other test processes).
//! It runs under a shell that waits on a pipe from this process, so when the
//! process ends, however it ends, the pipe closes and the server stops.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;

const PORT: u16 = 5432;

struct Server {
    socket_dir: PathBuf,
    // Held for the life of the process: dropping it would close the pipe
    // the keeper shell waits on.
    _keeper: Child,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// A URL for a new, empty database on the test server. Panics with the
/// reason when PostgreSQL cannot be started (for example, not installed).
pub async fn fresh_postgres_url() -> String {
    let server = SERVER
        .get_or_init(start)
        .as_ref()
        .unwrap_or_else(|e| panic!("cannot start the test PostgreSQL server: {e}"));
    let admin_url = url(&server.socket_dir, "postgres");
    let db = format!("t_{}", uuid::Uuid::new_v4().simple());
    // The socket appears a moment before the server accepts sessions.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = loop {
        match sqlx::PgConnection::connect(&admin_url).await {
            Ok(conn) => break conn,
            Err(e) if Instant::now() > deadline => {
                panic!("cannot connect to the test PostgreSQL server: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // The name is generated above from hex digits only.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut conn)
        .await
        .unwrap();
    url(&server.socket_dir, &db)
}

fn url(socket_dir: &Path, db: &str) -> String {
    format!(
        "postgres://postgres@localhost/{db}?host={}&port={PORT}",
        socket_dir.display()
    )
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (apt-get install postgresql)".to_owned())?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql".to_owned())
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root; then it runs as the `postgres` user.
fn as_server_user(program: &Path) -> Command {
    if !running_as_root() {
        return Command::new(program);
    }
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(program);
    cmd
}

fn start() -> Result<Server, String> {
    let bin = bin_dir()?;
    // Kept past this function: the keeper shell removes it once the server stops.
    let dir = tempfile::Builder::new()
        .prefix("yard-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let data = dir.as_path().join("data");
    let socket_dir = dir.as_path().join("socket");
    std::fs::create_dir(&socket_dir).map_err(|e| e.to_string())?;
    if running_as_root() {
        let user = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or("running as root, and there is no postgres user to run the server as")?;
        for path in [dir.as_path(), socket_dir.as_path()] {
            nix::unistd::chown(path, Some(user.uid), Some(user.gid)).map_err(|e| e.to_string())?;
        }
    }
    let init = as_server_user(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
        .arg(&data)
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !init.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        ));
    }
    let script = format!(
        "{} -D {} -k {} -p {PORT} -c listen_addresses= -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=300 >{}/server.log 2>&1 & pid=$!; \
         read _; kill -INT $pid; wait $pid; rm -rf {}",
        bin.join("postgres").display(),
        data.display(),
        socket_dir.display(),
        dir.as_path().display(),
        dir.as_path().display(),
    );
    let mut keeper = as_server_user(Path::new("/bin/sh"))
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let socket = socket_dir.join(format!(".s.PGSQL.{PORT}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.as_path().join("server.log")).unwrap_or_default();
            let _ = keeper.stdin.take().map(|mut s| s.write_all(b"\n"));
            return Err(format!("postgres did not start within 30s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server {
        socket_dir,
        _keeper: keeper,
    })
}
