//! The stack list as JSON, made once per change: every `GET /api/stacks`
//! and every watcher of the stacks stream gets the same bytes until a stack
//! changes, so hundreds of stacks and watchers cost one serialisation per
//! change, not one per request.

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use yard_api::StackList;
use yard_core::Deployment;

/// The JSON of the last list the deployer handed out.
#[derive(Debug, Default)]
pub(crate) struct StackListJson {
    last: RwLock<Option<(Arc<Vec<Deployment>>, Bytes)>>,
}

impl StackListJson {
    /// `live` as a `StackList` in JSON; made again only when `live` is not
    /// the list last seen (the deployer hands out a new one per change).
    pub(crate) fn render(&self, live: &Arc<Vec<Deployment>>) -> Bytes {
        if let Some((seen, json)) = &*self.last.read().unwrap_or_else(|p| p.into_inner())
            && Arc::ptr_eq(seen, live)
        {
            return json.clone();
        }
        let json =
            Bytes::from(serde_json::to_vec(&StackList::from(live.as_slice())).unwrap_or_default());
        *self.last.write().unwrap_or_else(|p| p.into_inner()) =
            Some((Arc::clone(live), json.clone()));
        json
    }
}
