//! `GET /api/aio`: the all-in-one container's services, as `yard aio
//! status` prints them; and the service summary `/health` carries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /api/aio`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AioStatus {
    /// Every service in start order, the yard itself first.
    pub services: Vec<AioServiceView>,
    pub browser: BrowserView,
    /// Where building the agent image on first boot stands: `present`,
    /// `building`, `built`, `failed: ...`, or absent when not looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_image: Option<String>,
    /// Where the forge's first-boot set-up stands: `ready`, `setting up`,
    /// `failed: <step>: ...`, or absent when there is no forge to set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<String>,
}

/// One service of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AioServiceView {
    pub name: String,
    /// `starting`, `running`, `backing_off`, `gave_up`, `stopped`, `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Seconds since the current run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// How often it was started again after it exited.
    pub restarts: u32,
    /// How its last run ended (`exit code 1`, `signal 9`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// Whether its ready check passed in the current run.
    pub ready: bool,
    /// Why it failed or gave up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AioServiceView {
    /// Running and past its ready check: what `/health` counts as up.
    pub fn is_up(&self) -> bool {
        self.state == "running" && self.ready
    }
}

/// Where agents and people find the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrowserView {
    /// `internal`, `external` or `none`; agents get it as `BROWSER_MODE`.
    pub mode: String,
    /// The page to watch the browser on; agents get it as
    /// `BROWSER_VIEW_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_url: Option<String>,
    /// Where a DevTools client connects; agents get it as
    /// `BROWSER_CDP_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdp_url: Option<String>,
}
