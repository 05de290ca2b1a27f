//! Logging set-up: JSON lines by default (one object per line, event fields
//! flattened), or human-readable. Level from `RUST_LOG`, default `info`.
//!
//! The per-request access line (target `loggate::access`) is the one line
//! written at the request rate, so it is buffered, like nginx's
//! `access_log … buffer=`: lines collect in memory and reach stderr in one
//! write every `FLUSH_INTERVAL` or `FLUSH_BYTES`, whichever comes first,
//! and before any other line (so the output stays in order) and at exit.
//! Every other line is written at once. Measured on loopback: one write(2)
//! per request cost about 10% of throughput.

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

static ACCESS: LazyLock<Mutex<Vec<u8>>> = LazyLock::new(|| Mutex::new(Vec::with_capacity(FLUSH_BYTES * 2)));
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

/// Writes out buffered access lines (called periodically and at exit).
pub fn flush() {
    let mut buf = ACCESS.lock();
    if !buf.is_empty() {
        let _ = io::stderr().lock().write_all(&buf);
        buf.clear();
    }
}

/// Adds whole access lines to the buffer, writing it out when full.
fn append_access(lines: &[u8]) {
    let mut buf = ACCESS.lock();
    buf.extend_from_slice(lines);
    if buf.len() >= FLUSH_BYTES {
        let _ = io::stderr().lock().write_all(&buf);
        buf.clear();
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
