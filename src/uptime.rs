//! How long the host and the Docker daemon have been up, for the grace gate.
//!
//! The host's uptime comes from the kernel (via `sysinfo`). The daemon's is known only for a
//! local socket: the kernel tells the peer's pid (`SO_PEERCRED`), whose start time `/proc`
//! gives — unless the process is hidden from us (`ProtectProc=invisible`, another pid
//! namespace), in which case only the host's uptime counts.

use crate::address::Address;
use serde::{Deserialize, Serialize};
use std::os::unix::net::UnixStream;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Uptime {
    pub host_seconds: u64,
    /// The daemon's uptime, or why it cannot be known.
    pub daemon_seconds: Result<u64, String>,
}

impl Uptime {
    /// Not read (the grace gate is disabled).
    pub fn unknown() -> Self {
        Uptime {
            host_seconds: 0,
            daemon_seconds: Err("not read: gates.grace is disabled".into()),
        }
    }
}

pub fn read(address: &Address) -> Uptime {
    Uptime {
        host_seconds: sysinfo::System::uptime(),
        daemon_seconds: daemon_uptime(address),
    }
}

fn daemon_uptime(address: &Address) -> Result<u64, String> {
    let path = address
        .socket_path()
        .ok_or_else(|| "not a local socket: the daemon's start time cannot be known".to_string())?;
    let shown = path.display();
    let stream = UnixStream::connect(path).map_err(|e| format!("connecting to {shown}: {e}"))?;
    let cred = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("SO_PEERCRED on {shown}: {e}"))?;
    let pid = sysinfo::Pid::from_u32(cred.pid() as u32);
    if cred.pid() <= 0 {
        return Err("the daemon's pid is not visible from here".into());
    }
    let mut sys = sysinfo::System::new();
    sys.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), true);
    let started = sys
        .process(pid)
        .map(|p| p.start_time())
        .filter(|t| *t > 0)
        .ok_or_else(|| format!("the daemon (pid {pid}) is not visible in /proc from here"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(now.saturating_sub(started))
}
