//! TLS, in and out: one crypto provider for the process (rustls' default,
//! aws-lc-rs, with post-quantum hybrid key exchange preferred)
//! and the PEM files operators name (a CA bundle for outbound deliveries,
//! a certificate chain and key for the listener).
//!
//! Files are read and checked once, where they are named, so a bad one
//! stops the start (or a reload) with its path and what is wrong, instead
//! of failing every connection later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
