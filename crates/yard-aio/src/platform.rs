//! The services `yard aio` runs when no file says otherwise.
//!
//! The all-in-one container brings the forge and a browser people can
//! watch: Xvfb draws on display `:99`, Chromium runs on it with DevTools on
//! loopback only, x11vnc shows the display to websockify, which serves the
//! noVNC page, and two `yard relay` processes put the DevTools port and the
//! noVNC page behind the relay token. Only the relays listen beyond
//! loopback, so nothing reaches the browser without the token. Each service
//! runs as an unprivileged user when the image has one (`browser`, `git`),
//! and its order follows what it needs: Chromium once the display answers,
//! x11vnc once Chromium's DevTools answer, websockify after x11vnc.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use nix::unistd::{User, chown};

use crate::config::{AioConfig, ConfigError, LogLimits, ReadyCheck, ServiceConfig, UserSpec};

/// The X display the browser draws on.
pub const DISPLAY: &str = ":99";
/// Chromium's DevTools port, on loopback only.
pub const DEVTOOLS_PORT: u16 = 9222;
/// The DevTools relay's port, with the token.
pub const RELAY_PORT: u16 = 9223;
/// x11vnc's port, on loopback only.
pub const VNC_PORT: u16 = 5900;
/// The noVNC page's port, behind the token.
pub const NOVNC_PORT: u16 = 6080;
/// websockify's port, on loopback only; the guard on [`NOVNC_PORT`] fronts it.
pub const WEBSOCKIFY_PORT: u16 = 6081;
/// The forge's HTTP port.
pub const FORGE_PORT: u16 = 3001;
/// Where Debian's novnc package keeps the page.
const NOVNC_WEB: &str = "/usr/share/novnc";
/// The unprivileged user the browser stack runs as, when the image has it.
const BROWSER_USER: &str = "browser";
/// The unprivileged user the forge runs as, when the image has it.
const FORGE_USER: &str = "git";

/// What decides the built-in services.
#[derive(Debug, Clone)]
pub struct Platform {
    /// This binary, which also serves as the relay.
    pub yard_binary: PathBuf,
    pub data_dir: PathBuf,
    /// Where the relays listen: loopback unless the container says
    /// otherwise (`YARD_AIO_BIND=0.0.0.0`).
    pub bind: IpAddr,
    /// Run the forge (no external `GITEA_URL`).
    pub forge: bool,
    /// Run the browser stack (no external `CHROME_CDP_URL`).
    pub browser: bool,
    /// What every service gets in its environment besides the supervisor's
    /// own: where the browser is, and the relay token.
    pub env: BTreeMap<String, String>,
}

impl Platform {
    /// The built-in services, checked.
    pub fn config(&self) -> Result<AioConfig, ConfigError> {
        AioConfig::new(self.services(), LogLimits::default())
    }

    /// The profile Chromium keeps under the data directory.
    pub fn chrome_profile(&self) -> PathBuf {
        self.data_dir.join("chrome-profile")
    }

    /// The forge's working directory under the data directory.
    pub fn forge_dir(&self) -> PathBuf {
        self.data_dir.join("gitea")
    }

    /// The forge's `app.ini`, which the binary writes before the forge
    /// starts and `gitea web --config` reads: `<forge dir>/custom/conf/app.ini`.
    pub fn forge_config_path(&self) -> PathBuf {
        self.forge_dir().join("custom").join("conf").join("app.ini")
    }

    /// The system user the forge runs as, when the image has it: the
    /// owner of its `app.ini`, and who runs Gitea's CLI.
    pub fn forge_user(&self) -> Option<SystemUser> {
        existing_user(FORGE_USER).map(|user| SystemUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    /// Makes the directories the services write to and gives them to the
    /// services' users, so an unprivileged Chromium can keep its profile.
    pub fn prepare_directories(&self) -> io::Result<()> {
        let mut owned = Vec::new();
        if self.browser {
            owned.push((self.chrome_profile(), BROWSER_USER));
        }
        if self.forge {
            owned.push((self.forge_dir(), FORGE_USER));
            let conf = self.forge_config_path();
            if let Some(conf) = conf.parent() {
                owned.push((conf.to_owned(), FORGE_USER));
                if let Some(custom) = conf.parent() {
                    owned.push((custom.to_owned(), FORGE_USER));
                }
            }
        }
        for (directory, user) in owned {
            std::fs::create_dir_all(&directory)?;
            if let Some(user) = existing_user(user) {
                chown(&directory, Some(user.uid), Some(user.gid)).map_err(io::Error::from)?;
            }
        }
        Ok(())
    }

    fn services(&self) -> Vec<(String, ServiceConfig)> {
        let mut services = Vec::new();
        if self.forge {
            services.push(("gitea".to_owned(), self.forge_service()));
        }
        if self.browser {
            services.extend(self.browser_services());
        }
        services
    }

    fn forge_service(&self) -> ServiceConfig {
        let work = self.forge_dir().display().to_string();
        let config = self.forge_config_path().display().to_string();
        let mut forge = self.service(
            [
                "gitea",
                "web",
                "--port",
                &FORGE_PORT.to_string(),
                "--config",
                &config,
            ],
            FORGE_USER,
        );
        forge.env.insert("GITEA_WORK_DIR".to_owned(), work.clone());
        forge.env.insert("HOME".to_owned(), work);
        forge.ready = Some(ReadyCheck::Tcp(loopback(FORGE_PORT)));
        forge.stop_timeout = Duration::from_secs(10);
        forge
    }

    fn browser_services(&self) -> Vec<(String, ServiceConfig)> {
        let mut xvfb = self.service(
            [
                "Xvfb",
                DISPLAY,
                "-screen",
                "0",
                "1920x1080x24",
                "-nolisten",
                "tcp",
            ],
            BROWSER_USER,
        );
        xvfb.ready = Some(ReadyCheck::X11Display(DISPLAY.to_owned()));

        let profile = format!("--user-data-dir={}", self.chrome_profile().display());
        let devtools_port = format!("--remote-debugging-port={DEVTOOLS_PORT}");
        let mut chromium = self.service(
            [
                "chromium",
                // The container is the sandbox: Chromium's own needs user
                // namespaces that containers seldom grant.
                "--no-sandbox",
                "--remote-debugging-address=127.0.0.1",
                &devtools_port,
                &profile,
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-dev-shm-usage",
                "--window-position=0,0",
                "--window-size=1920,1080",
                "about:blank",
            ],
            BROWSER_USER,
        );
        chromium
            .env
            .insert("DISPLAY".to_owned(), DISPLAY.to_owned());
        chromium.after = vec!["xvfb".to_owned()];
        chromium.ready = Some(ReadyCheck::Tcp(loopback(DEVTOOLS_PORT)));

        let vnc_port = VNC_PORT.to_string();
        let mut x11vnc = self.service(
            [
                "x11vnc",
                "-display",
                DISPLAY,
                "-localhost",
                "-rfbport",
                &vnc_port,
                "-forever",
                "-shared",
                "-nopw",
                "-quiet",
            ],
            BROWSER_USER,
        );
        x11vnc.after = vec!["chromium".to_owned()];
        x11vnc.ready = Some(ReadyCheck::Tcp(loopback(VNC_PORT)));

        let mut websockify = self.service(
            [
                "websockify",
                "--web",
                NOVNC_WEB,
                &loopback(WEBSOCKIFY_PORT),
                &loopback(VNC_PORT),
            ],
            BROWSER_USER,
        );
        websockify.after = vec!["x11vnc".to_owned()];
        websockify.ready = Some(ReadyCheck::Tcp(loopback(WEBSOCKIFY_PORT)));

        let mut devtools_relay = self.relay(RELAY_PORT, DEVTOOLS_PORT);
        devtools_relay.after = vec!["chromium".to_owned()];
        let mut novnc = self.relay(NOVNC_PORT, WEBSOCKIFY_PORT);
        novnc.after = vec!["websockify".to_owned()];

        vec![
            ("xvfb".to_owned(), xvfb),
            ("chromium".to_owned(), chromium),
            ("x11vnc".to_owned(), x11vnc),
            ("websockify".to_owned(), websockify),
            ("devtools-relay".to_owned(), devtools_relay),
            ("novnc".to_owned(), novnc),
        ]
    }

    /// `yard relay` from `port` on the bind address to `upstream` on
    /// loopback; the token comes from the environment, not the command
    /// line, which every user of the container could read.
    fn relay(&self, port: u16, upstream: u16) -> ServiceConfig {
        let listen = SocketAddr::new(self.bind, port).to_string();
        let mut relay = self.service(
            [
                self.yard_binary.display().to_string().as_str(),
                "relay",
                "--listen",
                &listen,
                "--upstream",
                &loopback(upstream),
            ],
            BROWSER_USER,
        );
        relay.ready = Some(ReadyCheck::Tcp(
            SocketAddr::new(connectable(self.bind), port).to_string(),
        ));
        relay.stop_timeout = Duration::from_secs(3);
        relay
    }

    fn service<'a>(&self, command: impl IntoIterator<Item = &'a str>, user: &str) -> ServiceConfig {
        let mut service = ServiceConfig::new(command);
        service.env = self.env.clone();
        service.user = existing_user(user).map(|_| UserSpec::Name(user.to_owned()));
        service.stop_timeout = Duration::from_secs(5);
        service
    }
}

/// A system user: its name and ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Where a service reaches an address bound to `bind`: an unspecified
/// address (`0.0.0.0`) is reached on loopback.
fn connectable(bind: IpAddr) -> IpAddr {
    if bind.is_unspecified() {
        match bind {
            IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(_) => IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
        }
    } else {
        bind
    }
}

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The user, when this system has one of that name.
fn existing_user(name: &str) -> Option<User> {
    User::from_name(name).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(forge: bool, browser: bool) -> Platform {
        Platform {
            yard_binary: PathBuf::from("/usr/local/bin/yard"),
            data_dir: PathBuf::from("/data"),
            bind: IpAddr::from([0, 0, 0, 0]),
            forge,
            browser,
            env: BTreeMap::from([("BROWSER_MODE".to_owned(), "internal".to_owned())]),
        }
    }

    #[test]
    fn the_browser_stack_starts_in_the_order_it_needs() {
        let config = platform(true, true).config().expect("valid");
        let order = config.start_order();
        let position = |name: &str| order.iter().position(|n| n == name).expect(name);
        assert!(position("xvfb") < position("chromium"));
        assert!(position("chromium") < position("x11vnc"));
        assert!(position("x11vnc") < position("websockify"));
        assert!(position("websockify") < position("novnc"));
        assert!(position("chromium") < position("devtools-relay"));
        assert!(order.contains(&"gitea".to_owned()));
        let chromium = &config.services()["chromium"];
        assert!(
            chromium
                .command
                .contains(&"--remote-debugging-address=127.0.0.1".to_owned())
        );
        assert!(
            chromium
                .command
                .contains(&"--user-data-dir=/data/chrome-profile".to_owned())
        );
        assert_eq!(chromium.env["BROWSER_MODE"], "internal");
    }

    #[test]
    fn the_forge_reads_the_app_ini_the_yard_writes() {
        let platform = platform(true, false);
        let config = platform.config().expect("valid");
        let gitea = &config.services()["gitea"];
        assert_eq!(
            gitea.command,
            [
                "gitea",
                "web",
                "--port",
                "3001",
                "--config",
                "/data/gitea/custom/conf/app.ini"
            ]
        );
        assert_eq!(gitea.env["GITEA_WORK_DIR"], "/data/gitea");
        assert_eq!(
            platform.forge_config_path(),
            PathBuf::from("/data/gitea/custom/conf/app.ini")
        );
    }

    #[test]
    fn the_forges_directories_are_made() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut platform = platform(true, false);
        platform.data_dir = dir.path().to_owned();
        platform.prepare_directories().expect("made");
        assert!(
            platform
                .forge_config_path()
                .parent()
                .expect("a parent")
                .is_dir()
        );
    }

    #[test]
    fn external_forge_and_browser_leave_nothing_to_run() {
        let config = platform(false, false).config().expect("valid");
        assert!(config.services().is_empty());
        let browser_only = platform(false, true).config().expect("valid");
        assert!(!browser_only.services().contains_key("gitea"));
    }

    #[test]
    fn only_the_relays_listen_beyond_loopback() {
        let config = platform(false, true).config().expect("valid");
        for (name, service) in config.services() {
            let joined = service.command.join(" ");
            if name.ends_with("relay") || name == "novnc" {
                assert!(joined.contains("--listen 0.0.0.0:"), "{name}: {joined}");
                assert!(
                    !joined.contains("token"),
                    "the token is not on the command line"
                );
            } else {
                assert!(!joined.contains("0.0.0.0"), "{name}: {joined}");
            }
        }
    }

    #[test]
    fn a_file_turns_off_a_default_and_replaces_another() {
        let config = platform(true, true)
            .config()
            .expect("valid")
            .overlay(
                "[services.gitea]\nenabled = false\n\
                 [services.xvfb]\ncommand = [\"Xvfb\", \":98\"]\nready = { x11_display = \":98\" }\n",
            )
            .expect("valid overlay");
        assert!(!config.services().contains_key("gitea"));
        assert_eq!(config.services()["xvfb"].command, ["Xvfb", ":98"]);
        assert!(config.services().contains_key("chromium"));
    }

    #[test]
    fn turning_off_what_others_need_is_refused_by_name() {
        let error = platform(false, true)
            .config()
            .expect("valid")
            .overlay("[services.xvfb]\nenabled = false\n")
            .expect_err("chromium needs xvfb");
        let message = error.to_string();
        assert!(
            message.contains("chromium") && message.contains("xvfb"),
            "{message}"
        );
    }
}
