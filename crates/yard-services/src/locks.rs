//! One lock per stack name, so a deploy, a removal and the orphan sweep
//! never act on the same stack at once (the kube-rs rule: one reconcile per
//! object at a time). Locks for names nobody holds are dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Debug, Default)]
pub(crate) struct NameLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl NameLocks {
    /// Waits for, then holds, the lock on `name`.
    pub(crate) async fn lock(&self, name: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            // Forget locks that no one holds or waits for.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(name.to_owned()).or_default())
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_name() {
        let locks = Arc::new(NameLocks::default());
        let held = locks.lock("alice").await;
        let other = locks.lock("bob").await;
        let waiting = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move { locks.lock("alice").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(held);
        drop(waiting.await.unwrap());
        drop(other);
        let _ = locks.lock("carol").await;
        assert_eq!(locks.locks.lock().unwrap().len(), 1);
    }
}
