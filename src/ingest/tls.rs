//! TLS on the OTLP listeners: a server certificate and key (PEM files), and for mTLS a client
//! CA file that makes a valid client certificate mandatory, optionally with the subjects allowed.
//! The files are checked again at every new connection and re-read when they changed, so a
//! renewed certificate is served without a restart; a change that does not load keeps the last
//! good one and says why in health. A refused handshake is a refusal like any other: counted with
//! its reason and peer, and shown in health.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the certificate, key and client CA come from (grafana.ini / `serve` flags).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Client certificates must chain to one of these CAs (mTLS).
    pub client_ca_file: Option<PathBuf>,
    /// When not empty, a client certificate's subject must match one of these: its common name,
    /// or its whole subject as RFC 4514 text (`CN=laptop-42,O=Example`).
    pub client_subjects: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: no PEM {what} in it")]
    NoPem { path: PathBuf, what: &'static str },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("certificate and key do not go together: {0}")]
    Config(String),
}

/// The identity of a file's content as last read: change time and length.
#[derive(Debug, Clone, PartialEq)]
struct Stamp(Option<SystemTime>, u64);

fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path).map(|m| Stamp(m.modified().ok(), m.len())).unwrap_or(Stamp(None, 0))
}

/// What health reports about a listener's TLS.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TlsHealth {
    /// `required` (mTLS), or `not asked`.
    pub client_certificates: &'static str,
    /// Subjects a client certificate must have, when limited.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_subjects: Vec<String>,
    /// The served certificate's subject and end of validity (RFC 3339).
    pub certificate_subject: String,
    pub certificate_expires: String,
    pub certificate_days_left: i64,
    /// Why the files as they are now could not be loaded (the previous ones are still served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
}

/// A loaded configuration and the files it came from.
struct Loaded {
    acceptor: TlsAcceptor,
    stamps: Vec<Stamp>,
    subject: String,
    not_after: chrono::DateTime<chrono::Utc>,
}

/// TLS for one listener (both listeners may share one).
pub struct Tls {
    settings: TlsSettings,
    current: Mutex<(Arc<Loaded>, Option<String>)>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid { path: path.to_path_buf(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem { path: path.to_path_buf(), what: "certificate" });
    }
    Ok(certs)
}

/// A certificate's subject (RFC 4514) and common name, and its end of validity.
fn describe(cert: &CertificateDer<'_>) -> Option<(String, Option<String>, chrono::DateTime<chrono::Utc>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject().to_string();
    let common_name = parsed.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
    let not_after = chrono::DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)?;
    Some((subject, common_name, not_after))
}

impl Tls {
    /// Loads the files; an error names the file and what is wrong with it.
    pub fn load(settings: TlsSettings) -> Result<Arc<Tls>, TlsError> {
        let loaded = Tls::read_files(&settings)?;
        Ok(Arc::new(Tls { settings, current: Mutex::new((Arc::new(loaded), None)) }))
    }

    fn files(settings: &TlsSettings) -> Vec<&Path> {
        let mut files = vec![settings.cert_file.as_path(), settings.key_file.as_path()];
        files.extend(settings.client_ca_file.as_deref());
        files
    }

    fn read_files(settings: &TlsSettings) -> Result<Loaded, TlsError> {
        // stamps first: a file replaced while it is read is read again at the next connection
        let stamps = Tls::files(settings).into_iter().map(stamp).collect();
        let chain = certificates(&settings.cert_file)?;
        let key_pem = read(&settings.key_file)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPem { path: settings.key_file.clone(), what: "private key" },
            e => TlsError::Invalid { path: settings.key_file.clone(), message: e.to_string() },
        })?;
        let (subject, _, not_after) = describe(&chain[0])
            .ok_or_else(|| TlsError::Invalid { path: settings.cert_file.clone(), message: "the certificate cannot be parsed".into() })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &settings.client_ca_file {
            Some(ca_file) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in certificates(ca_file)? {
                    roots.add(ca).map_err(|e| TlsError::Invalid { path: ca_file.clone(), message: e.to_string() })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| TlsError::Invalid { path: ca_file.clone(), message: e.to_string() })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Config(e.to_string()))?;
        // gRPC needs HTTP/2; OTLP/HTTP clients speak either
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Loaded { acceptor: TlsAcceptor::from(Arc::new(config)), stamps, subject, not_after })
    }

    /// The configuration for a new connection, re-read first when a file changed, and why the
    /// files as they are now do not load, if they do not.
    fn current(&self) -> (Arc<Loaded>, Option<String>) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let now: Vec<Stamp> = Tls::files(&self.settings).into_iter().map(stamp).collect();
        if now != current.0.stamps {
            match Tls::read_files(&self.settings) {
                Ok(loaded) => {
                    tracing::info!(subject = %loaded.subject, expires = %loaded.not_after, "TLS files changed: reloaded");
                    *current = (Arc::new(loaded), None);
                }
                Err(e) => {
                    let message = e.to_string();
                    if current.1.as_deref() != Some(message.as_str()) {
                        tracing::warn!(error = %message, "TLS files changed but do not load; serving the previous ones");
                    }
                    // the previous files keep being served; the next connection tries again
                    current.1 = Some(message);
                }
            }
        }
        current.clone()
    }

    /// Completes the handshake of an accepted connection; the error says why it was refused.
    pub async fn accept(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
        let acceptor = self.current().0.acceptor.clone();
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Err(_) => return Err(format!("TLS handshake not completed within {HANDSHAKE_TIMEOUT:?}")),
            Ok(Err(e)) => return Err(format!("TLS handshake failed: {}", handshake_reason(&e))),
            Ok(Ok(stream)) => stream,
        };
        if !self.settings.client_subjects.is_empty() {
            let described = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(describe);
            let Some((subject, common_name, _)) = described else {
                return Err("TLS client certificate: no readable subject".into());
            };
            let allowed = self.settings.client_subjects.iter().any(|s| *s == subject || Some(s) == common_name.as_ref());
            if !allowed {
                return Err(format!("TLS client certificate subject {subject:?} is not among the allowed subjects"));
            }
        }
        Ok(stream)
    }

    pub fn health(&self) -> TlsHealth {
        let (loaded, reload_error) = self.current();
        TlsHealth {
            client_certificates: if self.settings.client_ca_file.is_some() { "required" } else { "not asked" },
            client_subjects: self.settings.client_subjects.clone(),
            certificate_subject: loaded.subject.clone(),
            certificate_expires: loaded.not_after.to_rfc3339(),
            certificate_days_left: (loaded.not_after - chrono::Utc::now()).num_days(),
            reload_error,
        }
    }
}

/// An accepted TLS connection with its addresses, as the gRPC server reads them.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    info: tonic::transport::server::TcpConnectInfo,
}

impl TlsConn {
    pub fn peer(&self) -> Option<SocketAddr> {
        self.info.remote_addr
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The connections of `listener` once their handshakes complete (each on its own task, so a slow
/// client holds up no other); a refused one goes to `refused` with the peer and the reason.
/// Ends when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<Tls>,
    refused: impl Fn(SocketAddr, String) + Send + Sync + 'static,
) -> impl futures::Stream<Item = Result<TlsConn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<TlsConn, std::io::Error>>(64);
    let refused = Arc::new(refused);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors and the like: pause, as hyper's accept loop does
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // without it every small response waits for the peer's delayed ACK
            let _ = tcp.set_nodelay(true);
            let info = tonic::transport::server::TcpConnectInfo { local_addr: tcp.local_addr().ok(), remote_addr: Some(peer) };
            let (tls, tx, refused) = (tls.clone(), tx.clone(), refused.clone());
            tokio::spawn(async move {
                match tls.accept(tcp).await {
                    Ok(stream) => {
                        let _ = tx.send(Ok(TlsConn { stream, info })).await;
                    }
                    Err(reason) => {
                        tracing::info!(%peer, %reason, "TLS connection refused");
                        refused(peer, reason);
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// rustls's handshake error as a reason an operator can act on.
fn handshake_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("peer sent no certificates") || text.contains("NoCertificatesPresented") {
        return "the client sent no certificate (mTLS requires one signed by the client CA)".into();
    }
    if text.contains("UnknownIssuer") {
        return "the client certificate is not signed by the client CA".into();
    }
    if text.contains("Expired") {
        return "the client certificate has expired".into();
    }
    if text.contains("handshake eof") {
        return "the client closed the connection during the handshake (does it trust the server's certificate and CA?)".into();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let settings = TlsSettings { cert_file: cert.clone(), key_file: dir.path().join("key.pem"), ..Default::default() };
        let e = Tls::load(settings.clone()).err().unwrap().to_string();
        assert!(e.contains("cert.pem"), "{e}");
        std::fs::write(&cert, "not pem").unwrap();
        let e = Tls::load(settings).err().unwrap().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
