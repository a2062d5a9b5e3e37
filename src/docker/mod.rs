//! Everything that talks to the Docker daemon. Nothing in here decides anything: it reads into
//! plain data ([`snapshot`], [`inventory`]) or carries out a prune the runner already decided on
//! ([`prune`]).

pub mod inventory;
pub mod prune;
mod raw;
pub mod snapshot;
pub mod usage;

use bollard::Docker;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The address used when neither `--docker-host`, `docker.host` nor `DOCKER_HOST` says one.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Picks the daemon address: the command line, then the config, then `DOCKER_HOST`, then the
/// local socket. An empty `DOCKER_HOST` counts as unset, as it does for the docker CLI.
pub fn resolve_host(cli: Option<&str>, config: Option<&str>) -> String {
    cli.map(str::to_string)
        .or_else(|| config.map(str::to_string))
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// Checks that an address is one this build can talk to, so a typo is a usage error (exit 2)
/// rather than a runtime failure deep in a run.
pub fn check_host(host: &str) -> Result<(), String> {
    let (scheme, rest) = host.split_once("://").ok_or_else(|| {
        format!("{host:?} is not an address like unix:///var/run/docker.sock or tcp://host:2375")
    })?;
    match scheme {
        "unix" if rest.starts_with('/') => Ok(()),
        "unix" => Err(format!(
            "{host:?}: a unix socket address needs an absolute path"
        )),
        "tcp" | "http" => {
            let authority = rest.split('/').next().unwrap_or("");
            if authority.is_empty() {
                Err(format!(
                    "{host:?}: no host name or address after {scheme}://"
                ))
            } else {
                Ok(())
            }
        }
        other => Err(format!(
            "{host:?}: scheme {other:?} is not supported (use unix:// or tcp://; for ssh, \
             forward the socket with `ssh -L`)"
        )),
    }
}

/// A failed read, kept as data so that a gate can say why it is closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadError {
    /// The HTTP status when the daemon answered with an error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(code) => write!(f, "daemon answered {code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl ReadError {
    pub fn from_bollard(err: bollard::errors::Error, timeout: Duration) -> Self {
        use bollard::errors::Error as E;
        match err {
            E::DockerResponseServerError {
                status_code,
                message,
            } => Self {
                status: Some(status_code),
                message: message.trim().to_string(),
            },
            E::RequestTimeoutError => Self {
                status: None,
                message: format!("no answer within {}", humanize(timeout)),
            },
            other => Self {
                status: None,
                message: with_causes(&other),
            },
        }
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

/// A read's result as stored in a snapshot: serialisable so that snapshots captured from a real
/// daemon can be replayed by the gates' unit tests.
pub type Read<T> = Result<T, ReadError>;

/// A connection to one daemon: one client for reads with a short timeout, one for prunes with a
/// long one (a prune answers only when it is done), both counting every request they send.
#[derive(Clone)]
pub struct Daemon {
    pub host: String,
    read: Docker,
    prune: Docker,
    read_timeout: Duration,
    prune_timeout: Duration,
    calls: Arc<AtomicUsize>,
}

impl Daemon {
    /// Builds the clients. Connecting is lazy: nothing is sent until the first read.
    pub fn connect(
        host: &str,
        read_timeout: Duration,
        prune_timeout: Duration,
    ) -> Result<Self, String> {
        check_host(host)?;
        let base = Docker::connect_with_host(host).map_err(|e| e.to_string())?;
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
        Ok(Self {
            host: host.to_string(),
            read: counted(base.clone(), read_timeout),
            prune: counted(base, prune_timeout),
            read_timeout,
            prune_timeout,
            calls,
        })
    }

    /// How many Engine API requests this connection has sent.
    pub fn api_calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    fn read_err(&self, err: bollard::errors::Error) -> ReadError {
        ReadError::from_bollard(err, self.read_timeout)
    }

    fn prune_err(&self, err: bollard::errors::Error) -> ReadError {
        ReadError::from_bollard(err, self.prune_timeout)
    }
}

/// `30s`, `30m`, `53m10s`, `2h5m`: for messages, in Docker's duration syntax.
pub fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 && h == 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_checks() {
        assert!(check_host("unix:///var/run/docker.sock").is_ok());
        assert!(check_host("tcp://127.0.0.1:2375").is_ok());
        assert!(check_host("unix://relative.sock").is_err());
        assert!(check_host("tcp://").is_err());
        assert!(check_host("/var/run/docker.sock").is_err());
        assert!(check_host("ssh://me@host").unwrap_err().contains("ssh"));
    }

    #[test]
    fn durations_read_like_docker_durations() {
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_secs(30)), "30s");
        assert_eq!(humanize(Duration::from_secs(1800)), "30m");
        assert_eq!(humanize(Duration::from_secs(3190)), "53m10s");
        assert_eq!(humanize(Duration::from_secs(7_500)), "2h5m");
        assert_eq!(humanize(Duration::from_secs(86_400)), "24h");
    }

    #[test]
    fn host_precedence() {
        assert_eq!(
            resolve_host(Some("tcp://a:1"), Some("tcp://b:1")),
            "tcp://a:1"
        );
        assert_eq!(resolve_host(None, Some("tcp://b:1")), "tcp://b:1");
    }
}
