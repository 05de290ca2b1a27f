//! The writer thread: takes records off the queue, writes them as JSON
//! lines, flushes when the queue runs dry, and reopens its file when asked
//! (SIGHUP after logrotate moved it away).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use prometheus::IntCounter;

use super::AuditRecord;

/// How long the writer waits for a record before it looks at the reopen
/// flag again: a SIGHUP on an idle gateway still rotates within this.
const IDLE_CHECK: Duration = Duration::from_millis(200);

pub enum Sink {
    Stderr,
    File(PathBuf),
}

pub fn spawn(
    sink: Sink,
    records: Receiver<AuditRecord>,
    reopen: Arc<AtomicBool>,
    written: IntCounter,
    dropped: IntCounter,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("loggate-audit".into()).spawn(move || {
        let mut out = Output::open(sink);
        loop {
            let first = match records.recv_timeout(IDLE_CHECK) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if reopen.swap(false, Ordering::AcqRel) {
                out.reopen();
            }
            // Everything queued is written before one flush.
            for record in first.into_iter().chain(records.try_iter()) {
                if out.write(&record) { written.inc() } else { dropped.inc() }
            }
            out.flush();
        }
        out.flush();
    })?;
    Ok(())
}

/// The sink, opened (a file that cannot be opened is retried on SIGHUP;
/// its records are counted as dropped meanwhile).
struct Output {
    sink: Sink,
    file: Option<BufWriter<File>>,
    line: Vec<u8>,
}

impl Output {
    fn open(sink: Sink) -> Self {
        let mut out = Output { sink, file: None, line: Vec::with_capacity(512) };
        out.reopen();
        out
    }

    fn reopen(&mut self) {
        self.flush();
        if let Sink::File(path) = &self.sink {
            self.file = match OpenOptions::new().create(true).append(true).open(path) {
                Ok(f) => Some(BufWriter::with_capacity(64 * 1024, f)),
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open the audit file; records are dropped until it can be (SIGHUP retries)");
                    None
                }
            };
        }
    }

    /// Writes one record as a line; false when it could not be.
    fn write(&mut self, record: &AuditRecord) -> bool {
        self.line.clear();
        if serde_json::to_writer(&mut self.line, record).is_err() {
            return false;
        }
        self.line.push(b'\n');
        let done = match (&self.sink, &mut self.file) {
            (Sink::Stderr, _) => std::io::stderr().lock().write_all(&self.line),
            (Sink::File(_), Some(f)) => f.write_all(&self.line),
            (Sink::File(_), None) => return false,
        };
        done.is_ok()
    }

    fn flush(&mut self) {
        if let Some(f) = &mut self.file
            && let Err(e) = f.flush()
        {
            tracing::error!(error = %e, "writing the audit file failed");
        }
    }
}
