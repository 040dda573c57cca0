//! TLS, in and out: one crypto provider for the process (rustls' default,
//! aws-lc-rs, with post-quantum hybrid key exchange preferred), the PEM
//! files operators name (a CA bundle for outbound deliveries, a certificate
//! chain and key for the listener), and the listener's certificate, swapped
//! in place on SIGHUP so a renewed one is served without a restart.
//!
//! Files are read and checked once, where they are named, so a bad one
//! stops the start (or a reload) with its path and what is wrong, instead
//! of failing every connection later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The process's crypto provider, installed as rustls' default the first
/// time it is asked for, so every client and listener uses the same one.
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Arc::clone(installed);
    }
    // Losing a race to install is fine: whoever won installed the same.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default().map_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()), Arc::clone)
}

/// Why a PEM file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("cannot read `{path}`: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("`{path}` is not PEM: {error}")]
    Pem { path: PathBuf, error: String },
    #[error("`{path}` holds no `CERTIFICATE` block")]
    NoCertificate { path: PathBuf },
    #[error("`{path}`: certificate {index} is not a usable trust anchor: {error}")]
    BadAnchor { path: PathBuf, index: usize, error: rustls::Error },
    #[error("`{path}` holds no private key (PKCS#8, PKCS#1 or SEC1 PEM)")]
    NoKey { path: PathBuf },
    #[error("`{path}`: the private key is not usable: {error}")]
    BadKey { path: PathBuf, error: rustls::Error },
    #[error("the key in `{key}` does not match the certificate in `{cert}`: {error}")]
    Mismatch { cert: PathBuf, key: PathBuf, error: rustls::Error },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|error| TlsFileError::Read { path: path.to_owned(), error })
}

fn pem_error(path: &Path, error: &pem::Error) -> TlsFileError {
    TlsFileError::Pem { path: path.to_owned(), error: error.to_string() }
}

/// Every `CERTIFICATE` block of the PEM file at `path`, in order; at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(path)?;
    let certs =
        CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// The certificates of a CA bundle, each checked to be a usable trust anchor.
pub fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let certs = read_certificates(path)?;
    let mut store = RootCertStore::empty();
    for (index, cert) in certs.iter().enumerate() {
        store.add(cert.clone()).map_err(|error| TlsFileError::BadAnchor { path: path.to_owned(), index, error })?;
    }
    Ok(certs)
}

/// The first private key of the PEM file at `path`.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsFileError::NoKey { path: path.to_owned() }),
        Err(e) => Err(pem_error(path, &e)),
    }
}

/// The listener's certificate and key (`--tls-cert`, `--tls-key`), read
/// again by [`ServerTls::reload`]. A handshake takes whichever pair is
/// current when it starts; a reload that fails keeps the old pair.
pub struct ServerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<Current>,
    acceptor: tokio_rustls::TlsAcceptor,
}

/// The pair handshakes take: rustls asks for it per connection.
#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("cert_path", &self.cert_path).field("key_path", &self.key_path).finish()
    }
}

impl ServerTls {
    /// Reads and checks the pair (the key must match the certificate).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, Box<TlsFileError>> {
        let provider = provider();
        let pair = certified(&provider, cert_path, key_path)?;
        let current = Arc::new(Current(ArcSwap::from_pointee(pair)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| Box::new(TlsFileError::BadKey { path: key_path.to_owned(), error }))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // Only HTTP/1.1 is served.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again and serves the new pair from the next handshake on.
    pub fn reload(&self) -> Result<(), Box<TlsFileError>> {
        let pair = certified(&provider(), &self.cert_path, &self.key_path)?;
        self.current.0.store(Arc::new(pair));
        Ok(())
    }

    pub fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

fn certified(provider: &CryptoProvider, cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, Box<TlsFileError>> {
    let certs = read_certificates(cert_path)?;
    let key = read_private_key(key_path)?;
    CertifiedKey::from_der(certs, key, provider).map_err(|error| {
        Box::new(match error {
            rustls::Error::InconsistentKeys(_) => {
                TlsFileError::Mismatch { cert: cert_path.to_owned(), key: key_path.to_owned(), error }
            }
            error => TlsFileError::BadKey { path: key_path.to_owned(), error },
        })
    })
}
