//! Everything that talks to the Docker daemon. Nothing in here decides anything: it reads into
//! plain data ([`snapshot`], [`inventory`], [`usage`]) or carries out a prune the runner already
//! decided on ([`prune`]).

pub mod containers;
pub mod filters;
pub mod inventory;
pub mod objects;
pub mod prune;
mod raw;
pub mod snapshot;
pub mod tagged;
pub mod usage;

use crate::address::Address;
use crate::model::{humanize, ReadError};
use bollard::Docker;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A bollard error as data; `timeout` is the bound that was in force, to say which one fired.
fn read_error(err: bollard::errors::Error, timeout: Duration) -> ReadError {
    use bollard::errors::Error as E;
    match err {
        E::DockerResponseServerError {
            status_code,
            message,
        } => ReadError::answered(status_code, &message),
        E::RequestTimeoutError => {
            ReadError::local(format!("no answer within {}", humanize(timeout)))
        }
        other => ReadError::local(with_causes(&other)),
    }
}

/// An error and its chain of causes: bollard's own message for a failed connection is only
/// "client error (connect)"; the cause says why ("Permission denied", "Connection refused").
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// A connection to one daemon: one client for reads with a short timeout, one for prunes with a
/// long one (a prune answers only when it is done), both counting every request they send.
#[derive(Clone)]
pub struct Daemon {
    pub address: Address,
    read: Docker,
    prune: Docker,
    read_timeout: Duration,
    prune_timeout: Duration,
    calls: Arc<AtomicUsize>,
    /// `swarm.managers`, asked for the swarm reads when this daemon is a worker's; each counts
    /// its own requests. An error says why a manager's client could not even be made (its
    /// certificates could not be loaded): that manager then counts as not answering.
    pub managers: Vec<Result<Daemon, String>>,
}

impl Daemon {
    /// Builds the clients. Connecting is lazy: nothing is sent until the first read.
    pub fn connect(
        address: &Address,
        read_timeout: Duration,
        prune_timeout: Duration,
    ) -> Result<Self, String> {
        let base = Docker::connect_with_host(address.as_str()).map_err(|e| e.to_string())?;
        Ok(Self::counting(address, base, read_timeout, prune_timeout))
    }

    /// A swarm manager's Engine API over TLS with client certificates, for reads only:
    /// `cert_dir` holds `ca.pem`, `cert.pem` and `key.pem` (Docker's `DOCKER_CERT_PATH`
    /// layout). Certificates are loaded here; connecting is lazy.
    pub fn connect_tls(
        address: &Address,
        cert_dir: &std::path::Path,
        read_timeout: Duration,
    ) -> Result<Self, String> {
        let file = |name: &str| cert_dir.join(name);
        let base = Docker::connect_with_ssl(
            address.as_str(),
            &file("key.pem"),
            &file("cert.pem"),
            &file("ca.pem"),
            read_timeout.as_secs().max(1),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| format!("{}: TLS with {}: {e}", address.as_str(), cert_dir.display()))?;
        Ok(Self::counting(address, base, read_timeout, read_timeout))
    }

    /// The read and prune clients over one `base` client, each with its bound, both counting
    /// every request they send.
    fn counting(
        address: &Address,
        base: Docker,
        read_timeout: Duration,
        prune_timeout: Duration,
    ) -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = |docker: Docker, timeout: Duration| {
            let calls = calls.clone();
            docker
                .with_timeout(timeout)
                .with_request_modifier(move |req| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    req
                })
        };
        Self {
            address: address.clone(),
            read: counted(base.clone(), read_timeout),
            prune: counted(base, prune_timeout),
            read_timeout,
            prune_timeout,
            calls,
            managers: Vec::new(),
        }
    }

    /// With the managers a worker asks (see [`Daemon::managers`]).
    pub fn with_managers(mut self, managers: Vec<Result<Daemon, String>>) -> Self {
        self.managers = managers;
        self
    }

    /// How many Engine API requests this connection has sent.
    pub fn api_calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    fn read_err(&self, err: bollard::errors::Error) -> ReadError {
        read_error(err, self.read_timeout)
    }

    fn prune_err(&self, err: bollard::errors::Error) -> ReadError {
        read_error(err, self.prune_timeout)
    }
}
