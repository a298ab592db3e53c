//! Waiting for something another process does (a comment on the fake
//! forge, a file), by looking again every 100 ms up to a limit: what the
//! tests wait on this way is not announced to them.

use std::time::Duration;

/// Looks at `check` every 100 ms until it gives something, up to `secs`
/// seconds; panics then with `what()` (called only on failure, so it may
/// gather a log).
pub async fn within<T>(
    secs: u64,
    what: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {secs}s for {}",
            what()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
