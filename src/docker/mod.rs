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
pub mod transport;
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
    transport: transport::Transport,
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
    /// Builds the clients over one [`transport::Transport`]: `tls` for a `tcp://` address's
    /// certificates (`docker.cert_path`, `DOCKER_CERT_PATH` or `swarm.cert_path`), answers
    /// bounded by `max_answer` bytes. Certificates are loaded here; connecting is lazy.
    pub fn connect(
        address: &Address,
        tls: Option<&transport::TlsFiles>,
        max_answer: u64,
        read_timeout: Duration,
        prune_timeout: Duration,
    ) -> Result<Self, String> {
        let transport = transport::Transport::new(address, tls, max_answer)?;
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = |timeout: Duration| {
            let calls = calls.clone();
            transport
                .bollard(timeout.as_secs().max(1))
                .with_timeout(timeout)
                .with_request_modifier(move |req| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    req
                })
        };
        Ok(Self {
            address: address.clone(),
            read: counted(read_timeout),
            prune: counted(prune_timeout),
            transport,
            read_timeout,
            prune_timeout,
            calls,
            managers: Vec::new(),
        })
    }

    /// Reads of this daemon and its managers are abandoned when `interrupt` is raised.
    pub fn with_interrupt(self, interrupt: &crate::model::Interrupt) -> Self {
        self.transport.set_interrupt(interrupt.clone());
        for m in self.managers.iter().flatten() {
            m.transport.set_interrupt(interrupt.clone());
        }
        self
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
