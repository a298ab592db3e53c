//! The all-in-one container's service list, read from TOML.
//!
//! Each `[services.NAME]` table says how to run one service, which services
//! must be ready before it starts, how to tell it is ready itself, and how
//! to restart it. Everything is checked when the file is read (unknown keys,
//! missing commands, unknown or circular dependencies), so a mistake stops
//! the container at once with a message naming it, instead of surfacing as
//! a service that never starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML, has an unknown key or a value of the
    /// wrong type; the parser's message names the key and its place.
    #[error("invalid aio config: {0}")]
    Parse(#[from] toml::de::Error),
    /// A service has no `command`, or an empty one.
    #[error("service `{service}` has no command: `command` must name a program")]
    MissingCommand { service: String },
    /// A service's `after` names a service that is not configured.
    #[error("service `{service}` is after `{dependency}`, which is not a configured service")]
    UnknownDependency { service: String, dependency: String },
    /// The `after` lists form a loop, so no service in it could start.
    #[error("services depend on each other in a cycle: {cycle}")]
    DependencyCycle { cycle: String },
    /// A `ready` check that cannot work, such as an X display with no number.
    #[error("service `{service}` has an invalid ready check: {reason}")]
    InvalidReady { service: String, reason: String },
    /// `give_up_after` is zero, which would give up before the first start.
    #[error("service `{service}`: `give_up_after` must be at least 1")]
    InvalidGiveUp { service: String },
}

/// The whole file: the services and where their logs go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AioConfig {
    #[serde(default)]
    services: BTreeMap<String, ServiceConfig>,
    #[serde(default)]
    logs: LogLimits,
}

/// How large a service's log may grow and how many old logs are kept.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogLimits {
    /// The size past which `NAME.log` is rotated to `NAME.log.1`.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// How many rotated logs (`.1` to `.N`) are kept.
    #[serde(default = "default_keep")]
    pub keep: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_bytes: default_max_bytes(),
            keep: default_keep(),
        }
    }
}

/// One service: what to run, as whom, after what, and how to restart it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `false` removes the service, built-in or not: how a file turns off
    /// a default such as the forge.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The program and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// Variables added to the supervisor's own environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whom to run as; honoured only when the supervisor runs as root.
    #[serde(default)]
    pub user: Option<UserSpec>,
    /// Services that must be ready before this one starts.
    #[serde(default)]
    pub after: Vec<String>,
    /// How to tell this service is up; without it, running means ready.
    #[serde(default)]
    pub ready: Option<ReadyCheck>,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The first wait before a restart; doubled after each fast failure.
    #[serde(default = "default_backoff_initial", deserialize_with = "duration")]
    pub backoff_initial: Duration,
    /// The longest wait before a restart.
    #[serde(default = "default_backoff_max", deserialize_with = "duration")]
    pub backoff_max: Duration,
    /// How many fast failures in a row make the supervisor give up.
    #[serde(default = "default_give_up_after")]
    pub give_up_after: u32,
    /// A run shorter than this is a fast failure; a longer one resets the
    /// backoff and the count of fast failures.
    #[serde(default = "default_fast_failure", deserialize_with = "duration")]
    pub fast_failure: Duration,
    /// How long the service has to exit after SIGTERM before SIGKILL.
    #[serde(default = "default_stop_timeout", deserialize_with = "duration")]
    pub stop_timeout: Duration,
}

impl ServiceConfig {
    /// A service that runs `command` with every other setting at its
    /// default: no dependencies, ready when running, always restarted.
    pub fn new(command: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            enabled: true,
            command: command.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            user: None,
            after: Vec::new(),
            ready: None,
            restart: RestartPolicy::default(),
            backoff_initial: default_backoff_initial(),
            backoff_max: default_backoff_max(),
            give_up_after: default_give_up_after(),
            fast_failure: default_fast_failure(),
            stop_timeout: default_stop_timeout(),
        }
    }
}

/// A user by name or by numeric id.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum UserSpec {
    Uid(u32),
    Name(String),
}

/// How to tell a service is up, so the services after it may start.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ReadyCheck {
    /// A TCP connection to this address succeeds.
    Tcp(String),
    /// The X server for this display (`:99`) has made its socket,
    /// `/tmp/.X11-unix/X99`.
    X11Display(String),
    /// This file exists.
    File(PathBuf),
}

impl ReadyCheck {
    /// The socket an X server for `display` creates, if `display` names one.
    pub fn x11_socket(display: &str) -> Option<PathBuf> {
        let number = display.strip_prefix(':')?;
        let number = number.split('.').next().unwrap_or(number);
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Path::new("/tmp/.X11-unix").join(format!("X{number}")))
    }
}

/// Whether a service that exits is started again.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    #[default]
    Always,
    Never,
}

impl AioConfig {
    /// Reads and checks a configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::default().overlay(text)
    }

    /// A configuration of these services (services with `enabled = false`
    /// left out), checked.
    pub fn new(
        services: impl IntoIterator<Item = (String, ServiceConfig)>,
        logs: LogLimits,
    ) -> Result<Self, ConfigError> {
        let config = Self {
            services: services
                .into_iter()
                .filter(|(_, service)| service.enabled)
                .collect(),
            logs,
        };
        config.validate()?;
        Ok(config)
    }

    /// This configuration changed by a file: each `[services.NAME]` in the
    /// file replaces the service of that name whole (or adds it), one with
    /// `enabled = false` removes it, and a `[logs]` table replaces the
    /// limits. The result is checked as a whole, so a file that removes a
    /// service others start after is refused, naming both.
    pub fn overlay(mut self, text: &str) -> Result<Self, ConfigError> {
        let file: Self = toml::from_str(text)?;
        for (name, service) in file.services {
            if service.enabled {
                self.services.insert(name, service);
            } else {
                self.services.remove(&name);
            }
        }
        if text_has_logs_table(text) {
            self.logs = file.logs;
        }
        self.validate()?;
        Ok(self)
    }

    /// The services, by name.
    pub fn services(&self) -> &BTreeMap<String, ServiceConfig> {
        &self.services
    }

    /// The log size limits shared by all services.
    pub fn logs(&self) -> LogLimits {
        self.logs
    }

    /// The services in an order where each comes after everything in its
    /// `after` list; among services free to go, by name, so the order is
    /// the same on every run.
    pub fn start_order(&self) -> Vec<String> {
        let mut waiting_on: BTreeMap<&str, BTreeSet<&str>> = self
            .services
            .iter()
            .map(|(name, service)| {
                let after = service.after.iter().map(String::as_str).collect();
                (name.as_str(), after)
            })
            .collect();
        let mut order = Vec::with_capacity(waiting_on.len());
        while let Some(next) = waiting_on
            .iter()
            .find(|(_, after)| after.is_empty())
            .map(|(name, _)| *name)
        {
            waiting_on.remove(next);
            for after in waiting_on.values_mut() {
                after.remove(next);
            }
            order.push(next.to_owned());
        }
        order
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (name, service) in &self.services {
            if service.command.first().is_none_or(String::is_empty) {
                return Err(ConfigError::MissingCommand {
                    service: name.clone(),
                });
            }
            if service.give_up_after == 0 {
                return Err(ConfigError::InvalidGiveUp {
                    service: name.clone(),
                });
            }
            if let Some(dependency) = service
                .after
                .iter()
                .find(|dependency| !self.services.contains_key(*dependency))
            {
                return Err(ConfigError::UnknownDependency {
                    service: name.clone(),
                    dependency: dependency.clone(),
                });
            }
            let invalid_ready = match &service.ready {
                Some(ReadyCheck::Tcp(address)) if address.is_empty() => {
                    Some("`tcp` needs an address such as 127.0.0.1:9222".to_owned())
                }
                Some(ReadyCheck::X11Display(display))
                    if ReadyCheck::x11_socket(display).is_none() =>
                {
                    Some(format!("`{display}` is not an X display such as :99"))
                }
                _ => None,
            };
            if let Some(reason) = invalid_ready {
                return Err(ConfigError::InvalidReady {
                    service: name.clone(),
                    reason,
                });
            }
        }
        if let Some(cycle) = self.find_cycle() {
            return Err(ConfigError::DependencyCycle {
                cycle: cycle.join(" -> "),
            });
        }
        Ok(())
    }

    /// A loop in the `after` lists, as the names along it with the first
    /// repeated at the end (`a -> b -> a`).
    fn find_cycle(&self) -> Option<Vec<String>> {
        let mut finished = BTreeSet::new();
        for start in self.services.keys() {
            let mut path = Vec::new();
            if let Some(cycle) = self.walk(start, &mut path, &mut finished) {
                return Some(cycle);
            }
        }
        None
    }

    fn walk<'a>(
        &'a self,
        name: &'a str,
        path: &mut Vec<&'a str>,
        finished: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(position) = path.iter().position(|on_path| *on_path == name) {
            let mut cycle: Vec<String> = path[position..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(name.to_owned());
            return Some(cycle);
        }
        if finished.contains(name) {
            return None;
        }
        path.push(name);
        let mut after: Vec<&str> = self
            .services
            .get(name)
            .map(|service| service.after.iter().map(String::as_str).collect())
            .unwrap_or_default();
        after.sort_unstable();
        for dependency in after {
            if let Some(cycle) = self.walk(dependency, path, finished) {
                return Some(cycle);
            }
        }
        path.pop();
        finished.insert(name);
        None
    }
}

/// Whether the file sets `[logs]`, so that a file without one keeps the
/// limits it overlays.
fn text_has_logs_table(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|table| table.contains_key("logs"))
}

fn enabled_by_default() -> bool {
    true
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|error| serde::de::Error::custom(format!("invalid duration `{text}`: {error}")))
}

fn default_max_bytes() -> u64 {
    10 * 1024 * 1024
}

fn default_keep() -> usize {
    3
}

fn default_backoff_initial() -> Duration {
    Duration::from_millis(500)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(30)
}

fn default_give_up_after() -> u32 {
    5
}

fn default_fast_failure() -> Duration {
    Duration::from_secs(10)
}

fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}
