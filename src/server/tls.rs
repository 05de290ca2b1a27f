//! Listener TLS: rustls (ring provider), HTTP/2 and HTTP/1.1 by ALPN. The
//! certificate pair is re-read when its files change (including Kubernetes
//! Secret symlink swaps); a broken pair keeps the last good one in force.
//! There is never a fallback to plain HTTP.

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the certificate files are checked (contract: within 10 s).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Loads and checks a certificate chain and its key (they must match).
pub fn load_server_config(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("server.tls_cert {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("server.tls_cert {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "server.tls_cert {}: no certificate found", cert.display());
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("server.tls_key {}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("server.tls_cert and server.tls_key do not form a valid pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate in force, swapped atomically on reload.
pub struct ReloadingTls {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<ServerConfig>,
    seen: parking_lot::Mutex<Vec<Option<SystemTime>>>,
}

fn modified(paths: [&Path; 2]) -> Vec<Option<SystemTime>> {
    paths.iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
}

impl ReloadingTls {
    pub fn open(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let config = load_server_config(cert, key)?;
        Ok(ReloadingTls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: ArcSwap::from_pointee(config),
            seen: parking_lot::Mutex::new(modified([cert, key])),
        })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Reloads when either file changed. `Err` leaves the last good pair.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let now = modified([&self.cert, &self.key]);
        if *self.seen.lock() == now {
            return Ok(false);
        }
        let config = load_server_config(&self.cert, &self.key)?;
        self.current.store(Arc::new(config));
        *self.seen.lock() = now;
        Ok(true)
    }
}
