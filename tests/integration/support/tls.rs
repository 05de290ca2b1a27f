//! Test PKI (rcgen, ring): a throw-away CA that signs server and client
//! certificates for `localhost` / `127.0.0.1`, and a raw HTTPS client
//! (hyper over tokio-rustls) that reports the negotiated ALPN protocol and
//! the certificate the server presented.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority that exists for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM and DER.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        TestCa { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone() }
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self, cn: &str) -> Leaf {
        self.leaf(cn, &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate.
    pub fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Writes the CA certificate to `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.pem()).unwrap();
        p
    }

    /// A client config trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let mut c = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        c
    }

    /// A server config for `leaf`, HTTP/1.1 only; with `require_client_certs`
    /// the handshake fails unless the client presents a certificate of this CA.
    pub fn server_config(&self, leaf: &Leaf, require_client_certs: bool) -> rustls::ServerConfig {
        let builder =
            rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().unwrap();
        let builder = if require_client_certs {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.issuer.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let mut c = builder.with_single_cert(vec![leaf.der.clone()], key).unwrap();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        c
    }
}

impl Leaf {
    /// Writes `cert.pem` and `key.pem` under `dir` with this prefix; returns their paths.
    pub fn write(&self, dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{prefix}cert.pem"));
        let key = dir.join(format!("{prefix}key.pem"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    /// Replaces the files at `cert`/`key` atomically (write aside, rename).
    pub fn replace(&self, cert: &Path, key: &Path) {
        for (path, text) in [(key, &self.key_pem), (cert, &self.cert_pem)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
    }
}

/// What one HTTPS exchange showed.
pub struct TlsExchange {
    pub status: StatusCode,
    pub body: Bytes,
    /// The ALPN protocol the server picked.
    pub alpn: Option<Vec<u8>>,
    /// The certificate the server presented (its leaf).
    pub server_cert: CertificateDer<'static>,
    pub version: http::Version,
}

/// One request over a fresh TLS connection to `addr` (SNI `localhost`):
/// HTTP/2 when the server picked `h2`, else HTTP/1.1.
pub async fn https_request(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    request: Request<Full<Bytes>>,
) -> Result<TlsExchange, Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    let (_, session) = tls.get_ref();
    let alpn = session.alpn_protocol().map(|p| p.to_vec());
    let server_cert = session.peer_certificates().and_then(|c| c.first()).cloned().ok_or("no server certificate")?;
    let io = TokioIo::new(tls);
    let response = if alpn.as_deref() == Some(b"h2") {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    } else {
        let mut request = request;
        let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into());
        *request.uri_mut() = path.parse()?;
        request.headers_mut().insert("host", http::HeaderValue::from_static("localhost"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    };
    let status = response.status();
    let version = response.version();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(TlsExchange { status, body, alpn, server_cert, version })
}

/// `GET https://localhost{path}` with an optional bearer token.
pub fn get(path: &str, bearer: Option<&str>) -> Request<Full<Bytes>> {
    let mut b = Request::get(format!("https://localhost{path}"));
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

/// Parses the first certificate of a PEM file (to compare with what was served).
pub fn cert_der_of(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}
