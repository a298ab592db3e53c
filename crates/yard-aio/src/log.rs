//! Each service's output, kept in a size-capped file.
//!
//! A container runs for weeks, and a chatty browser or a crash loop would
//! otherwise fill its disk; so a service's stdout and stderr go, line by
//! line, to `NAME.log`, which is rotated to `NAME.log.1` (and the older
//! ones shifted up to `NAME.log.N`, the oldest dropped) once it would pass
//! its size cap.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::LogLimits;

/// A log file that rotates itself when it grows past its cap.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    limits: LogLimits,
    file: File,
    written: u64,
}

impl RotatingLog {
    /// Opens (appending to) `dir/NAME.log`.
    pub fn open(dir: &Path, name: &str, limits: LogLimits) -> io::Result<Self> {
        let path = dir.join(format!("{name}.log"));
        let file = open_append(&path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path,
            limits,
            file,
            written,
        })
    }

    /// The current log file, `NAME.log`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (which should end in a newline), rotating first if
    /// it would take the file past its cap. A line longer than the cap gets
    /// a file of its own rather than being cut.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let length = u64::try_from(line.len()).unwrap_or(u64::MAX);
        if self.written > 0 && self.written.saturating_add(length) > self.limits.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.written = self.written.saturating_add(length);
        Ok(())
    }

    /// Shifts `NAME.log.K` to `.K+1` (dropping `.N`), moves the current
    /// file to `.1` and starts an empty one.
    fn rotate(&mut self) -> io::Result<()> {
        if self.limits.keep == 0 {
            self.file.set_len(0)?;
            self.written = 0;
            return Ok(());
        }
        remove_if_present(&self.rotated(self.limits.keep))?;
        for generation in (1..self.limits.keep).rev() {
            rename_if_present(&self.rotated(generation), &self.rotated(generation + 1))?;
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.file = open_append(&self.path)?;
        self.written = 0;
        Ok(())
    }

    fn rotated(&self, generation: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{generation}"));
        PathBuf::from(name)
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
