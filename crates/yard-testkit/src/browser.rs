//! A real headless Chromium for browser tests, driven over WebDriver by
//! chromedriver (Debian's `chromium` and `chromium-driver`).
//!
//! chromedriver runs in a process group of its own, so dropping the
//! [`Browser`] ends Chromium too, even when the test failed half-way.
//! Screenshots go to a folder the test names, numbered in the order taken.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long the `wait_*` helpers wait before the test fails.
const PATIENCE: Duration = Duration::from_secs(45);

/// The screen a test browses on.
#[derive(Debug, Clone, Copy)]
pub enum Screen {
    /// A desktop window, in CSS pixels.
    Desktop { width: u32, height: u32 },
    /// A phone's screen, in CSS pixels, with its pixel ratio and touch, as
    /// Chromium's device emulation makes it.
    Phone { width: u32, height: u32 },
}

/// chromedriver on a free port of its own, once it listens.
fn start_driver() -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("chromedriver (apt-get install chromium chromium-driver)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (driver, port)
}

/// Ends chromedriver and what it started (its process group).
fn end_driver(driver: &mut Child) {
    if let Ok(pid) = i32::try_from(driver.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = driver.wait();
}

/// A browser window of a given size.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    driver: Child,
    screenshots: PathBuf,
    taken: u32,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium on `screen`; screenshots go to `screenshots`
    /// (emptied first).
    pub async fn start(screenshots: &Path, screen: Screen) -> Self {
        let _ = std::fs::remove_dir_all(screenshots);
        std::fs::create_dir_all(screenshots).expect("the screenshot folder");
        let profile = tempfile::Builder::new()
            .prefix("yard-chromium-")
            .tempdir()
            .expect("a browser profile");
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chromium (apt-get install chromium)");
        let mut options = serde_json::json!({
            "binary": binary,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        match screen {
            Screen::Desktop { width, height } => {
                options["args"]
                    .as_array_mut()
                    .expect("args")
                    .push(format!("--window-size={width},{height}").into());
            }
            Screen::Phone { width, height } => {
                options["mobileEmulation"] = serde_json::json!({
                    "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0, "touch": true, "mobile": true},
                });
            }
        }
        let capabilities = serde_json::json!({ "goog:chromeOptions": options });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        // A free port found by binding may be taken again before
        // chromedriver binds it (tests start browsers at once), and a
        // driver that just opened its port may still refuse a session:
        // each try gets a driver of its own on a fresh port.
        let mut tries = 0;
        let (client, driver) = loop {
            tries += 1;
            let (mut driver, port) = start_driver();
            let session = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match session {
                Ok(client) => break (client, driver),
                Err(e) if tries < 4 => {
                    eprintln!("no WebDriver session on try {tries}: {e}; trying again");
                    end_driver(&mut driver);
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(e) => panic!("a WebDriver session with Chromium: {e}"),
            }
        };
        Self {
            client,
            driver,
            screenshots: screenshots.to_owned(),
            taken: 0,
            _profile: profile,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Saves what the window shows as `NN-name.png`; returns the file.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        self.taken += 1;
        let file = self
            .screenshots
            .join(format!("{:02}-{name}.png", self.taken));
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(&file, png).expect("writing the screenshot");
        file
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await;
        let element = element.unwrap_or_else(|e| panic!("no {css} to click: {e}"));
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Replaces what the field `css` holds with `text`, typed.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await;
        let field = field.unwrap_or_else(|e| panic!("no field {css}: {e}"));
        field.clear().await.expect("clearing the field");
        field.send_keys(text).await.expect("typing into the field");
    }

    /// Types `text` wherever the keyboard focus is.
    pub async fn keys(&self, text: &str) {
        let focused = self
            .client
            .active_element()
            .await
            .expect("a focused element");
        focused.send_keys(text).await.expect("typing");
    }

    /// The text of the element `css`, once it is displayed and its text
    /// satisfies `ready`.
    pub async fn wait_for_text(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && element.is_displayed().await.unwrap_or(false)
                && let Ok(text) = element.text().await
            {
                if ready(&text) {
                    return text;
                }
                last = text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not show the expected text in {PATIENCE:?}; last: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element `css` is displayed (or, with `shown` false,
    /// is hidden or gone).
    pub async fn wait_for_display(&self, css: &str, shown: bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let displayed = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.is_displayed().await.unwrap_or(false),
                Err(_) => false,
            };
            if displayed == shown {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} was not {} within {PATIENCE:?}",
                if shown { "shown" } else { "hidden" }
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element that has the keyboard focus, by its id.
    pub async fn focused_id(&self) -> Option<String> {
        let focused = self.client.active_element().await.ok()?;
        focused.attr("id").await.ok().flatten()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        end_driver(&mut self.driver);
    }
}
