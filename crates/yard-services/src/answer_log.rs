//! The answer log: answers this daemon decided and told their agents, kept
//! on disk until the store has them.
//!
//! Where one daemon owns its store (a SQLite file in its data directory),
//! the daemon's memory decides which outcome a question it asked gets, and
//! the waiting agent hears an answer before the store's write, which costs
//! several times the rest of the answer's path. What makes the answer
//! durable first is one append to this file: like SQLite's own write-ahead
//! log under `synchronous = NORMAL`, the append survives the process being
//! killed (the kernel holds it), not the machine losing power. At start
//! the daemon writes what the log holds to the store (each write changes
//! only a question still pending, so it may be done twice), then empties
//! it; while it runs, the log is emptied whenever every answer in it is in
//! the store. One JSON object per line; the file is 0600, as answers may
//! say anything a person typed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use yard_core::{QuestionOutcome, Timestamp};

/// One answer as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LoggedAnswer {
    pub(crate) id: String,
    pub(crate) answer: String,
    pub(crate) by: String,
    pub(crate) reason: Option<String>,
    /// When it was given (ms since the epoch): the question's `settled_at`.
    pub(crate) at: i64,
}

impl LoggedAnswer {
    pub(crate) fn outcome(&self) -> QuestionOutcome {
        QuestionOutcome::Answered {
            answer: self.answer.clone(),
            by: self.by.clone(),
            reason: self.reason.clone(),
        }
    }

    pub(crate) fn at(&self) -> Timestamp {
        Timestamp(self.at)
    }
}

/// The open log.
#[derive(Debug)]
pub(crate) struct AnswerLog {
    path: PathBuf,
    state: Mutex<LogState>,
}

#[derive(Debug)]
struct LogState {
    file: File,
    /// Answers appended and not yet in the store.
    unwritten: usize,
}

impl AnswerLog {
    /// Opens the log at `path` (made 0600 if missing) and returns what an
    /// earlier run left in it, for the store. A line that is not an answer
    /// (a write cut short by a lost machine) is skipped with a warning:
    /// its answer never reached an agent whole either.
    pub(crate) fn open(path: &Path) -> io::Result<(Self, Vec<LoggedAnswer>)> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let left = text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .filter_map(|line| match serde_json::from_str(line) {
                    Ok(answer) => Some(answer),
                    Err(e) => {
                        tracing::warn!(log = %path.display(), error = %e, "skipping a damaged line of the answer log");
                        None
                    }
                })
                .collect::<Vec<LoggedAnswer>>();
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        if !text.is_empty() && !text.ends_with('\n') {
            // A line cut short: the next answer starts a line of its own.
            file.write_all(b"\n")?;
        }
        let log = Self {
            path: path.to_owned(),
            state: Mutex::new(LogState {
                file,
                unwritten: left.len(),
            }),
        };
        Ok((log, left))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `answer`; once this returns, a killed daemon still has it.
    pub(crate) fn append(&self, answer: &LoggedAnswer) -> io::Result<()> {
        let mut line = serde_json::to_vec(answer).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut state = self.lock();
        // One write of the whole line: an append that fails part way is
        // not counted, and the next start skips what it left.
        state.file.write_all(&line)?;
        state.unwritten += 1;
        Ok(())
    }

    /// `count` answers of the log are in the store; with none left
    /// unwritten, the log is emptied.
    pub(crate) fn written(&self, count: usize) {
        let mut state = self.lock();
        state.unwritten = state.unwritten.saturating_sub(count);
        if state.unwritten == 0
            && let Err(e) = state.file.set_len(0)
        {
            tracing::warn!(log = %self.path.display(), error = %e, "cannot empty the answer log; its answers are written again at the next start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str) -> LoggedAnswer {
        LoggedAnswer {
            id: id.to_owned(),
            answer: "allow".to_owned(),
            by: "alice".to_owned(),
            reason: Some("looks \"fine\"\nto me".to_owned()),
            at: 42,
        }
    }

    #[test]
    fn what_one_run_appends_and_never_writes_the_next_run_finds() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers.log");
        let (log, left) = AnswerLog::open(&path).unwrap();
        assert!(left.is_empty());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        log.append(&answer("a")).unwrap();
        log.append(&answer("b")).unwrap();
        drop(log);
        let (log, left) = AnswerLog::open(&path).unwrap();
        assert_eq!(left, vec![answer("a"), answer("b")]);
        // The earlier run's two are in the store now: the log empties.
        log.written(2);
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn the_log_empties_only_when_every_answer_in_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers.log");
        let (log, _) = AnswerLog::open(&path).unwrap();
        log.append(&answer("a")).unwrap();
        log.append(&answer("b")).unwrap();
        log.written(1);
        assert_ne!(fs::metadata(&path).unwrap().len(), 0);
        log.append(&answer("c")).unwrap();
        log.written(1);
        let (_, left) = AnswerLog::open(&path).unwrap();
        assert_eq!(left.len(), 3, "c is not written yet, so nothing is lost");
    }

    #[test]
    fn a_damaged_line_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("answers.log");
        let good = serde_json::to_string(&answer("a")).unwrap();
        fs::write(&path, format!("{good}\n{{\"id\":\"b\",\"ans")).unwrap();
        let (log, left) = AnswerLog::open(&path).unwrap();
        assert_eq!(left, vec![answer("a")]);
        // The next answer is not lost in the cut line.
        log.append(&answer("c")).unwrap();
        let (_, left) = AnswerLog::open(&path).unwrap();
        assert_eq!(left, vec![answer("a"), answer("c")]);
    }
}
