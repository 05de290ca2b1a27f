//! Logging set-up: JSON lines by default (one object per line, event fields
//! flattened), or human-readable. Level from `RUST_LOG`, default `info`.
//!
//! The per-request access line (target `loggate::access`) is the one line
//! written at the request rate, so it is buffered, like nginx's
//! `access_log … buffer=`: lines collect in memory and reach stderr in one
//! write every `FLUSH_INTERVAL` or `FLUSH_BYTES`, whichever comes first,
//! and before any other line (so the output stays in order) and at exit.
//! Every other line is written at once. Why, and what it measured:
//! docs/decisions/access-log-writer.md.

mod access;

pub use access::AccessRecord;

use crate::config::LogFormat;
use parking_lot::Mutex;
use std::io::{self, Write};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;
use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::EitherWriter;

/// The target of the per-request access line.
pub const ACCESS_TARGET: &str = "loggate::access";
/// Longest an access line waits in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Buffered bytes that trigger a write at once.
const FLUSH_BYTES: usize = 32 * 1024;

static ACCESS: LazyLock<AccessBuffer> = LazyLock::new(AccessBuffer::default);

/// The format `init` installed (none before, e.g. in unit tests).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

fn format() -> Option<LogFormat> {
    FORMAT.get().copied()
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(Writers);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if installed.is_ok() {
        let _ = FORMAT.set(format);
        let _ = std::thread::Builder::new().name("log-flush".into()).spawn(|| {
            loop {
                std::thread::sleep(FLUSH_INTERVAL);
                flush();
            }
        });
    }
}

/// Writes out buffered access lines (called periodically, before any other
/// line and at exit).
pub fn flush() {
    ACCESS.flush(&mut io::stderr());
}

/// Adds whole access lines to the buffer, writing it out when full.
fn append_access(lines: &[u8]) {
    ACCESS.append(lines, FLUSH_BYTES, &mut io::stderr());
}

/// Access lines on their way out: `lines` collects them; `writing` is the
/// buffer being written (empty whenever unlocked). A flush takes `writing`
/// while it still holds `lines`, so writes keep the order of the lines,
/// and writes after releasing `lines`, so workers keep appending (and
/// serving) while the output is slow.
#[derive(Default)]
struct AccessBuffer {
    lines: Mutex<Vec<u8>>,
    writing: Mutex<Vec<u8>>,
}

impl AccessBuffer {
    fn append(&self, lines: &[u8], flush_at: usize, out: &mut impl Write) {
        let mut buf = self.lines.lock();
        buf.extend_from_slice(lines);
        if buf.len() >= flush_at {
            self.write_out(buf, out);
        }
    }

    /// Also waits for a write already under way, so that a line logged
    /// next cannot overtake it.
    fn flush(&self, out: &mut impl Write) {
        self.write_out(self.lines.lock(), out);
    }

    fn write_out(&self, mut buf: parking_lot::MutexGuard<'_, Vec<u8>>, out: &mut impl Write) {
        let mut writing = self.writing.lock();
        std::mem::swap(&mut *buf, &mut *writing);
        drop(buf);
        if !writing.is_empty() {
            let _ = out.write_all(&writing);
            writing.clear();
        }
    }
}

/// Chooses the writer per event: the access buffer or stderr.
struct Writers;

impl<'a> MakeWriter<'a> for Writers {
    type Writer = EitherWriter<AccessLine, io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        flush();
        EitherWriter::B(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        if meta.target() == ACCESS_TARGET && *meta.level() == Level::INFO {
            EitherWriter::A(AccessLine)
        } else {
            self.make_writer()
        }
    }
}

/// One formatted access line (the formatter hands it over in one write).
struct AccessLine;

impl Write for AccessLine {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        append_access(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, mpsc};

    /// A writer that reports when a write starts and finishes it only when
    /// told to.
    struct Gated {
        started: mpsc::Sender<()>,
        go: mpsc::Receiver<()>,
        written: Vec<u8>,
    }

    impl Write for Gated {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let _ = self.started.send(());
            let _ = self.go.recv();
            self.written.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_write_does_not_hold_up_appending_and_keeps_the_order() {
        let buffer = Arc::new(AccessBuffer::default());
        let (started_tx, started) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        buffer.append(b"1\n", usize::MAX, &mut Vec::new());
        let writer = {
            let buffer = buffer.clone();
            std::thread::spawn(move || {
                let mut out = Gated { started: started_tx, go: go_rx, written: Vec::new() };
                buffer.flush(&mut out);
                out.written
            })
        };
        started.recv().unwrap();
        // The write of line 1 is under way and stalled: appending goes on.
        let mut late = Vec::new();
        buffer.append(b"2\n", usize::MAX, &mut late);
        buffer.append(b"3\n", usize::MAX, &mut late);
        assert!(late.is_empty(), "nothing reached the flush threshold");
        go.send(()).unwrap();
        assert_eq!(writer.join().unwrap(), b"1\n");
        buffer.flush(&mut late);
        assert_eq!(late, b"2\n3\n");
    }

    #[test]
    fn the_buffer_is_written_once_it_reaches_the_threshold() {
        let buffer = AccessBuffer::default();
        let mut out = Vec::new();
        buffer.append(b"abc\n", 8, &mut out);
        assert!(out.is_empty());
        buffer.append(b"defg\n", 8, &mut out);
        assert_eq!(out, b"abc\ndefg\n");
        buffer.flush(&mut out);
        assert_eq!(out, b"abc\ndefg\n", "nothing left to write");
    }
}
