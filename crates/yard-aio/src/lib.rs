//! The supervisor at the heart of the all-in-one container.
//!
//! `yard aio` is the container's main process: it runs the yard daemon, the
//! forge, and the display stack a browser needs (Xvfb, Chromium, x11vnc,
//! websockify) as services. This crate reads their configuration
//! ([`AioConfig`]), starts them in dependency order once what they need is
//! ready, restarts them with backoff when they exit, keeps their output in
//! size-capped logs ([`RotatingLog`]), and stops them in reverse order
//! ([`Supervisor`]).

mod config;
pub mod init;
mod log;
mod orphans;
mod platform;
mod supervisor;

pub use config::{
    AioConfig, ConfigError, LogLimits, ReadyCheck, RestartPolicy, ServiceConfig, UserSpec,
};
pub use log::RotatingLog;
pub use platform::{
    DEVTOOLS_PORT, DISPLAY, FORGE_PORT, NOVNC_PORT, Platform, RELAY_PORT, SystemUser, VNC_PORT,
    WEBSOCKIFY_PORT,
};
pub use supervisor::{
    LastExit, ServiceState, ServiceStatus, StatusHandle, Supervisor, SupervisorError,
};
