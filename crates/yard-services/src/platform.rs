//! What runs beside the yard in the all-in-one container, as the yard
//! reports it on `/api/aio` and `/health`.
//!
//! The supervisor that runs those services lives in the binary (`yard
//! aio`), not here: the services crate only defines what a report says and
//! the trait the binary implements, so the server can show it without
//! knowing how services are run, and a plain `yard serve` has no report.

use std::fmt;
use std::time::Duration;

/// Something that can say how the container's services are doing.
pub trait PlatformStatus: Send + Sync + fmt::Debug {
    fn report(&self) -> PlatformReport;
}

/// The container's services and the browser they make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformReport {
    pub services: Vec<PlatformService>,
    pub browser: BrowserInfo,
    /// Where building the agent image on first boot stands (`present`,
    /// `building`, `built`, `failed: ...`), when the yard looked.
    pub agent_image: Option<String>,
    /// Where the forge's first-boot set-up stands (`ready`, `setting up`,
    /// `failed: <step>: ...`), when the yard sets a forge up.
    pub forge: Option<String>,
}

impl PlatformReport {
    /// The services that are not up: not running, or running but not yet
    /// ready. Any of them makes the yard `degraded`.
    pub fn degraded(&self) -> impl Iterator<Item = &PlatformService> {
        self.services.iter().filter(|service| !service.is_up())
    }
}

/// One supervised service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformService {
    pub name: String,
    /// `starting`, `running`, `backing_off`, `gave_up`, `stopped`, `failed`.
    pub state: String,
    pub pid: Option<u32>,
    pub uptime: Option<Duration>,
    pub restarts: u32,
    /// How the last run ended (`exit code 1`, `signal 9`).
    pub last_exit: Option<String>,
    pub ready: bool,
    pub detail: Option<String>,
}

impl PlatformService {
    pub fn is_up(&self) -> bool {
        self.state == "running" && self.ready
    }
}

/// Where agents and people find the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserInfo {
    /// `internal` (this container's), `external` (`CHROME_CDP_URL`), or
    /// `none`.
    pub mode: String,
    /// The page where a person watches the browser.
    pub view_url: Option<String>,
    /// Where a DevTools client connects.
    pub cdp_url: Option<String>,
}
