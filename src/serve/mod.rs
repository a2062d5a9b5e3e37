//! `prunegate serve-swarm`: on a swarm manager, the swarm reads workers need, and nothing else.
//!
//! Why it exists: a worker's prunegate must learn the swarm's services and tasks, which only a
//! manager can list. Giving workers a client certificate for the managers' Engine API gave root
//! on any worker (the node most likely to run hostile CI code) root on every manager:
//! `docker -H tcp://manager:2376 --tlsverify run --privileged -v /:/host …`. Here the managers'
//! daemons keep no TCP listener at all; this server answers mutually authenticated TLS
//! (client certificates of the CA in `serve.cert_path/ca.pem` only, a CA of prunegate's own,
//! not the daemons'), routes five GETs ([`policy::route`]) to the local daemon's socket and
//! rebuilds every answer from an allowlist of fields ([`policy::redact`]): no environment,
//! secrets, mounts or commands leave the manager.
//!
//! Bounded against a hostile client: at most [`MAX_CONNECTIONS`] at once, 10 s to finish the
//! TLS handshake and to send a request's headers, one request per connection.

pub mod policy;

use crate::docker::Daemon;
use crate::model::ReadError;
use crate::settings::{ServeSettings, Settings};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The server's TLS: its certificate, and client certificates required, verified against
/// `ca.pem` alone.
fn server_config(serve: &ServeSettings) -> Result<rustls::ServerConfig, String> {
    let dir = &serve.tls.dir;
    let file = |name: &str| dir.join(name);
    let certs = |path: std::path::PathBuf| -> Result<Vec<CertificateDer<'static>>, String> {
        CertificateDer::pem_file_iter(&path)
            .and_then(|c| c.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("serve.cert_path: {}: {e}", path.display()))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs(file("ca.pem"))? {
        roots
            .add(ca)
            .map_err(|e| format!("serve.cert_path: ca.pem: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("serve.cert_path: ca.pem: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(file("key.pem"))
        .map_err(|e| format!("serve.cert_path: key.pem: {e}"))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(file("cert.pem"))?, key)
        .map_err(|e| format!("serve.cert_path: cert.pem and key.pem: {e}"))
}

/// Serves until SIGTERM or SIGINT.
pub async fn run(settings: &Settings, serve: &ServeSettings) -> Result<(), String> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(serve)?));
    let daemon = Daemon::connect(
        &settings.address,
        settings.tls.as_ref(),
        settings.max_answer,
        settings.read_timeout,
        settings.read_timeout,
    )?;
    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .map_err(|e| format!("serve.listen {}: {e}", serve.listen))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    tracing::info!(
        listen = %serve.listen,
        daemon = %settings.address,
        "serving the swarm's reads to workers"
    );
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    continue;
                }
            },
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        };
        let (acceptor, daemon) = (acceptor.clone(), daemon.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection(stream, acceptor, daemon).await {
                tracing::info!(%peer, "connection ended: {e}");
            }
        });
    }
}

/// One client connection: the TLS handshake (a client certificate of the CA required), then
/// its request.
async fn connection(
    stream: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    daemon: Daemon,
) -> Result<(), String> {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let tls = tokio::time::timeout(HANDSHAKE, acceptor.accept(stream))
        .await
        .map_err(|_| "no TLS handshake within 10 s".to_string())?
        .map_err(|e| format!("TLS: {e}"))?;
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (daemon, peer) = (daemon.clone(), peer.clone());
        async move { Ok::<_, std::convert::Infallible>(answer(&daemon, &peer, req).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE)
        .keep_alive(false)
        .serve_connection(TokioIo::new(tls), service)
        .await
        .map_err(|e| e.to_string())
}

fn reply(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn message(status: u16, text: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "message": text }).to_string();
    reply(status, Bytes::from(body))
}

/// Routes, asks the daemon, redacts.
async fn answer<B>(daemon: &Daemon, peer: &str, req: Request<B>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let (route, upstream) = match policy::route(&method, &pq) {
        Ok(r) => r,
        Err(refusal) => {
            tracing::warn!(%peer, %method, path = %pq, status = refusal.status, "refused");
            return message(refusal.status, &refusal.message);
        }
    };
    let response = match daemon.get(&upstream).await {
        Ok(body) if route == policy::Route::Ping => reply(200, body),
        Ok(body) => match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(value) => reply(200, Bytes::from(policy::redact(route, &value).to_string())),
            Err(e) => message(502, &format!("the daemon's answer is not JSON: {e}")),
        },
        Err(ReadError {
            status: Some(status),
            message: m,
        }) => message(status, &m),
        Err(e) => message(502, &e.message),
    };
    tracing::debug!(%peer, %method, path = %pq, status = response.status().as_u16(), "answered");
    response
}
