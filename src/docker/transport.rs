//! The one way prunegate's requests reach a daemon, for bollard's calls and the raw reads alike:
//! a Unix socket, plain TCP, or TLS that trusts the configured CA and nothing else.
//!
//! Why one transport of its own rather than bollard's:
//! - **Only the configured CA.** bollard's TLS client adds the operating system's roots (and
//!   `SSL_CERT_FILE`) to `ca.pem`, so a certificate from any public or second CA was accepted
//!   as the manager and opened the gates. Here the roots are `ca.pem`'s certificates alone.
//! - **Bounded answers.** bollard reads a whole answer into memory (1.96 GB in 6 s from an
//!   endless listing). Every connection here counts the bytes it reads and fails past
//!   `docker.max_answer_bytes`; connections are never reused, so that bound is per answer.
//! - **The same client for every read.** The raw reads went plain HTTP where bollard honoured
//!   `DOCKER_TLS_VERIFY`; now both take this transport.

use crate::address::Address;
use bytes::Bytes;
use http_body_util::{Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// bollard's request body type (`bollard::body_full` makes one).
pub type Body = Either<
    Full<Bytes>,
    StreamBody<
        Pin<Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send>>,
    >,
>;

/// The client certificate and the one CA a TLS connection uses (`DOCKER_CERT_PATH` layout:
/// `ca.pem`, `cert.pem`, `key.pem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub dir: PathBuf,
}

impl TlsFiles {
    /// A rustls client configuration whose only roots are `ca.pem`'s certificates.
    fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let file = |name: &str| self.dir.join(name);
        let read_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
            CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        let mut roots = rustls::RootCertStore::empty();
        let ca = file("ca.pem");
        let cas = read_certs(&ca)?;
        if cas.is_empty() {
            return Err(format!("{}: no certificate in it", ca.display()));
        }
        for cert in cas {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let certs = read_certs(&file("cert.pem"))?;
        let key = PrivateKeyDer::from_pem_file(file("key.pem"))
            .map_err(|e| format!("{}: {e}", file("key.pem").display()))?;
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| format!("{}: {e}", self.dir.display()))
    }
}

#[derive(Clone)]
enum Target {
    Unix(PathBuf),
    Tcp(String),
    Tls {
        authority: String,
        name: ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    },
}

/// Makes one connection per request to the target, whatever the request's URI says.
#[derive(Clone)]
struct Connector {
    target: Target,
    max_answer: u64,
}

/// A connection of any kind, counting what it reads.
enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

/// A connection that fails once more than `max` bytes have been read from it.
pub struct Bounded {
    inner: Stream,
    read: u64,
    max: u64,
}

impl Connection for Bounded {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Bounded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = match &mut this.inner {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Poll::Ready(Ok(())) = &polled {
            this.read += (buf.filled().len() - before) as u64;
            if this.read > this.max {
                return Poll::Ready(Err(std::io::Error::other(too_large(this.max))));
            }
        }
        polled
    }
}

/// What an answer over the bound is called, everywhere it is reported.
pub fn too_large(max: u64) -> String {
    format!("the daemon's answer is larger than {max} bytes (docker.max_answer_bytes)")
}

impl AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.inner {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.inner {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.inner {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = std::io::Result<TokioIo<Bounded>>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Bounded>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (target, max) = (self.target.clone(), self.max_answer);
        Box::pin(async move {
            let inner = match target {
                Target::Unix(path) => Stream::Unix(tokio::net::UnixStream::connect(path).await?),
                Target::Tcp(authority) => {
                    Stream::Tcp(tokio::net::TcpStream::connect(authority).await?)
                }
                Target::Tls {
                    authority,
                    name,
                    config,
                } => {
                    let tcp = tokio::net::TcpStream::connect(authority).await?;
                    let tls = tokio_rustls::TlsConnector::from(config)
                        .connect(name, tcp)
                        .await?;
                    Stream::Tls(Box::new(tls))
                }
            };
            Ok(TokioIo::new(Bounded {
                inner,
                read: 0,
                max,
            }))
        })
    }
}

/// A client for one daemon address.
#[derive(Clone)]
pub struct Transport {
    client: Client<Connector, Body>,
    /// Cuts a read in flight when raised ([`crate::model::Interrupt`]); prunes and deletes are
    /// let finish, so their answers (what the engine removed) are reported.
    /// Shared by the clones bollard's clients hold, so it can be set after they are made.
    interrupt: Arc<std::sync::OnceLock<crate::model::Interrupt>>,
    /// `http://host:port` (or `http://docker` for a socket): what request URIs start with.
    base: String,
}

impl Transport {
    /// `tls`: the certificates of a `tcp://` address's TLS (None: plain HTTP; a Unix socket
    /// ignores it). Certificates are loaded here; nothing is sent.
    pub fn new(address: &Address, tls: Option<&TlsFiles>, max_answer: u64) -> Result<Self, String> {
        let (target, base) = match (address.socket_path(), address.authority()) {
            (Some(path), _) => (
                Target::Unix(path.to_path_buf()),
                "http://docker".to_string(),
            ),
            (None, Some(authority)) => {
                let base = format!("http://{authority}");
                match tls {
                    None => (Target::Tcp(authority.to_string()), base),
                    Some(files) => {
                        let config = files.client_config().map_err(|e| {
                            format!("{}: TLS with {}: {e}", address, files.dir.display())
                        })?;
                        let host = address.host().unwrap_or_default();
                        let name = ServerName::try_from(host.to_string())
                            .map_err(|e| format!("{address}: {host:?}: {e}"))?;
                        (
                            Target::Tls {
                                authority: authority.to_string(),
                                name,
                                config: Arc::new(config),
                            },
                            base,
                        )
                    }
                }
            }
            (None, None) => return Err(format!("{address}: not a daemon address")),
        };
        let mut builder = Client::builder(TokioExecutor::new());
        // One connection per request: the answer bound is counted per connection.
        builder.pool_max_idle_per_host(0);
        let client = builder.build(Connector { target, max_answer });
        Ok(Self {
            client,
            base,
            interrupt: Arc::default(),
        })
    }

    /// Reads are cut short when `interrupt` is raised (set once; later calls change nothing).
    pub fn set_interrupt(&self, interrupt: crate::model::Interrupt) {
        let _ = self.interrupt.set(interrupt);
    }

    /// Sends `request` (its URI's path and query; its host is ignored) to the daemon. A GET is
    /// abandoned as soon as the interrupt is raised.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, SendError> {
        match (self.interrupt.get(), request.method() == hyper::Method::GET) {
            (Some(interrupt), true) => tokio::select! {
                r = self.forward(request) => r,
                _ = interrupt.wait() => Err(SendError::Interrupted),
            },
            _ => self.forward(request).await,
        }
    }

    async fn forward(&self, mut request: Request<Body>) -> Result<Response<Incoming>, SendError> {
        let pq = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let uri: Uri = format!("{}{pq}", self.base)
            .parse()
            .map_err(|e| SendError::Uri(format!("{}{pq}: {e}", self.base)))?;
        *request.uri_mut() = uri;
        self.client.request(request).await.map_err(SendError::Http)
    }

    /// A bollard client over this transport (its timeout in seconds).
    pub fn bollard(&self, timeout_secs: u64) -> bollard::Docker {
        let me = self.clone();
        let transport = move |req: bollard::BollardRequest| {
            let me = me.clone();
            async move {
                me.send(req).await.map_err(|e| match e {
                    SendError::Http(err) => bollard::errors::Error::HyperLegacyError { err },
                    other => bollard::errors::Error::IOError {
                        err: std::io::Error::other(other.to_string()),
                    },
                })
            }
        };
        bollard::Docker::connect_with_custom_transport(
            transport,
            Some("http://docker"),
            timeout_secs,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("a custom transport always connects")
    }
}

/// What a read cut by a signal says.
pub const INTERRUPTED: &str = "interrupted by a signal";

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Http(hyper_util::client::legacy::Error),
    #[error("{INTERRUPTED}")]
    Interrupted,
    /// The address and the request's path make no URI (an address that slipped past
    /// [`Address::parse`]): said, never a panic.
    #[error("not a request URI: {0}")]
    Uri(String),
}
