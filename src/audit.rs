//! The audit trail: one JSON record per request that reached
//! authentication, allowed or denied, with what it touched and the policy
//! revision it was decided on.
//!
//! Records leave the request path through a bounded queue to a writer
//! thread of their own. A full queue drops the record and counts it
//! (`loggate_audit_dropped_total`): a slow or stuck sink (a full disk, a
//! pipe nobody reads) never slows a request. Records never hold a token,
//! only its id.

mod record;
mod writer;

pub use record::{AuditRecord, AuditTarget};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use prometheus::IntCounter;

use crate::config::{AuditConfig, AuditSink};

/// The request path's end of the audit trail (cheap to clone).
#[derive(Clone)]
pub struct Audit {
    queue: Option<SyncSender<AuditRecord>>,
    dropped: IntCounter,
    /// Set by SIGHUP: the writer reopens its file before the next record.
    reopen: Arc<AtomicBool>,
}

impl Audit {
    /// No audit trail (`sink = "none"`).
    pub fn off(dropped: IntCounter) -> Self {
        Audit { queue: None, dropped, reopen: Arc::new(AtomicBool::new(false)) }
    }

    /// Starts the writer thread for `config`'s sink.
    pub fn start(config: &AuditConfig, written: IntCounter, dropped: IntCounter) -> std::io::Result<Self> {
        let sink = match (config.sink, &config.path) {
            (AuditSink::None, _) => return Ok(Audit::off(dropped)),
            (AuditSink::Stderr, _) => writer::Sink::Stderr,
            (AuditSink::File, Some(path)) => writer::Sink::File(path.clone()),
            (AuditSink::File, None) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "audit.path is required"));
            }
        };
        let (queue, records) = sync_channel(config.queue);
        let reopen = Arc::new(AtomicBool::new(false));
        writer::spawn(sink, records, reopen.clone(), written, dropped.clone())?;
        Ok(Audit { queue: Some(queue), dropped, reopen })
    }

    /// Whether records are kept (callers skip building them otherwise).
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Hands a record to the writer without ever waiting.
    pub fn record(&self, record: AuditRecord) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }

    /// Asks the writer to reopen its file (logrotate's SIGHUP).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }
}
