//! The writer thread: every few milliseconds it takes what the queue holds,
//! writes it as JSON lines in one buffered batch, and reopens its file when
//! asked (SIGHUP after logrotate moved it away).
//!
//! It sleeps between batches rather than waiting on the queue: a request
//! that hands over a record then never wakes a thread (a wake-up per record
//! cost more than the record itself under load).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use prometheus::IntCounter;

use super::AuditRecord;

/// Time between batches: how stale the file may be, and how far behind a
/// SIGHUP is acted on. The queue must hold what arrives in this time.
const BATCH_INTERVAL: Duration = Duration::from_millis(20);

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
            std::thread::sleep(BATCH_INTERVAL);
            if reopen.swap(false, Ordering::AcqRel) {
                out.reopen();
            }
            let (mut ok, mut failed) = (0, 0);
            let gone = loop {
                match records.try_recv() {
                    Ok(record) => {
                        if out.write(&record) {
                            ok += 1
                        } else {
                            failed += 1
                        }
                    }
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            out.flush();
            written.inc_by(ok);
            dropped.inc_by(failed);
            if gone {
                break;
            }
        }
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
            // Whole lines, so they never interleave with the log's own.
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
