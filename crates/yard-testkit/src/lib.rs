//! Test support for agentyard, in one place.
//!
//! Tests here run against real parts: a real PostgreSQL server started for
//! the test process, real Docker resources, the real `yard` binary. The
//! helpers make that safe: every Docker resource a test makes carries a
//! per-test label and is removed when the guard drops, even if the test
//! panicked, and every server dies with the test process.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod daemon;
mod docker;
mod images;
mod postgres;

pub use daemon::{Daemon, DaemonSetup};
pub use docker::{DockerSweep, TEST_LABEL};
pub use images::{CRASH_IMAGE, SLOW_IMAGE, WEB_IMAGE, ensure_stack_images};
pub use postgres::fresh_postgres_url;
