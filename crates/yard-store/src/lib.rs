//! The store: the yard's only memory.
//!
//! One code path serves SQLite (the default, a file in the data directory)
//! and PostgreSQL (`YARD_DATABASE_URL=postgres://...`), through sqlx's Any
//! driver. Migrations are embedded and run on open. The store never calls
//! Docker or any other backend; it only records what the services decide.
//!
//! Every query is parameterised (`$1`, `$2`, ...), which both backends accept.

mod agents;
mod config;
mod deployments;
mod issues;
mod questions;
mod sessions;
mod tokens;

use std::path::Path;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use agents::AgentTransition;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {location}: {source}")]
    Open {
        /// The database location with any password removed.
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the name {0:?} is already held by another deployment")]
    NameTaken(String),
    #[error("an active token is already named {0:?}")]
    TokenNameTaken(String),
    #[error("the store holds a value this version cannot read: {0}")]
    Corrupt(String),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle to the store; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// The SQLite store's file in the data directory (with its `-wal` and
/// `-shm` companions beside it).
pub const SQLITE_FILE: &str = "agentyard.db";

impl Store {
    /// The SQLite URL for a store file in `data_dir`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join(SQLITE_FILE).display())
    }

    /// Connects to `url` (`sqlite://...` or `postgres://...`) and brings the
    /// schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .acquire_timeout(Duration::from_secs(10))
            // A connection to a local file does not go stale: pinging it
            // before every query would only double each query's cost. A
            // PostgreSQL connection crosses a network and is checked.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers (SSE snapshots, listings) go on while a
                        // deployment writes; the busy timeout queues writers instead
                        // of failing them.
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                        )
                        .execute(conn)
                        .await?;
                    }
                    Ok(())
                })
            });
        let pool = options
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                location: redact(url),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        tracing::debug!(location = %redact(url), ?backend, "store open");
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether other daemons may share this store (PostgreSQL); a SQLite
    /// file belongs to one data directory and so to one daemon.
    pub fn is_shared(&self) -> bool {
        self.backend == Backend::Postgres
    }

    /// The yard's instance id as the store keeps it: `candidate` if the
    /// store had none (the first daemon's), or the one it has, so every
    /// daemon on one database names and labels stacks alike.
    pub async fn instance_id(&self, candidate: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO yard_meta (key, value) VALUES ('instance', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(candidate)
        .execute(&self.pool)
        .await?;
        let id: String = sqlx::query_scalar("SELECT value FROM yard_meta WHERE key = 'instance'")
            .fetch_one(&self.pool)
            .await?;
        Ok(id)
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) if !host.contains('@') || credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("postgres://yard:s3cret@db:5432/yard"),
            "postgres://yard:***@db:5432/yard"
        );
        assert_eq!(
            redact("sqlite:///tmp/x.db?mode=rwc"),
            "sqlite:///tmp/x.db?mode=rwc"
        );
        assert_eq!(redact("not a url"), "not a url");
    }
}
