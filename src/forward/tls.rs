//! Client TLS to the data plane: rustls with the ring provider only, system
//! roots or a configured CA bundle, optional client certificate.

use crate::config::UpstreamConfig;
use anyhow::Context;
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

pub fn client_tls_config(config: &UpstreamConfig) -> anyhow::Result<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &config.ca_file {
        for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("upstream.ca_file {}", ca.display()))? {
            roots.add(cert.with_context(|| format!("upstream.ca_file {}", ca.display()))?)?;
        }
    } else {
        // Unreadable individual system certificates are skipped, as browsers do.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    // ALPN is left empty: the connector builder sets it from the enabled
    // HTTP versions (and refuses a preset list).
    let tls = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("upstream.client_cert {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()?;
            let key =
                PrivateKeyDer::from_pem_file(key).with_context(|| format!("upstream.client_key {}", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(tls)
}
