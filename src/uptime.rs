//! How long the host and the Docker daemon have been up, for the grace gate.
//!
//! The host's uptime comes from the kernel (via `sysinfo`). The daemon's is known only for a
//! local socket: the kernel tells the peer's pid (`SO_PEERCRED`), whose start time `/proc`
//! gives. Under the shipped unit (`ProtectProc=invisible`) dockerd's `/proc` entry is hidden, so
//! its pid file stands in: `/run/docker.pid` (dockerd's default `--pidfile`) written at its
//! start, used only when it holds the very pid the socket's peer has (a stale file of an
//! earlier daemon says nothing). In another pid namespace neither is known, and only the
//! host's uptime counts.

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
    /// Not read (the grace gate is disabled, and the retention class off).
    pub fn unknown() -> Self {
        Uptime {
            host_seconds: 0,
            daemon_seconds: Err("not read: gates.grace is disabled".into()),
        }
    }

    /// When the daemon started (Unix seconds, as of `now`), or why that cannot be known: what
    /// tells the retention class whether a restart emptied the daemon's event buffer.
    pub fn daemon_started(&self, now: i64) -> Result<i64, String> {
        self.daemon_seconds.clone().map(|up| now - up as i64)
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let started = sys
        .process(pid)
        .map(|p| p.start_time())
        .filter(|t| *t > 0)
        .or_else(|| {
            PID_FILES
                .iter()
                .find_map(|f| started_per_pid_file(std::path::Path::new(f), cred.pid()))
        })
        .ok_or_else(|| {
            format!(
                "the daemon (pid {pid}) is not visible in /proc from here, and no pid file \
                 ({}) holds its pid",
                PID_FILES.join(", ")
            )
        })?;
    Ok(now.saturating_sub(started))
}

/// Where dockerd writes its pid at start (its `--pidfile` default; `/var/run` is a link to
/// `/run` on every current distribution).
const PID_FILES: [&str; 2] = ["/run/docker.pid", "/var/run/docker.pid"];

/// The time (Unix seconds) `file` was written, when it holds `pid`: the daemon's start.
fn started_per_pid_file(file: &std::path::Path, pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    if text.trim().parse::<i32>().ok()? != pid {
        return None;
    }
    let written = std::fs::metadata(file).ok()?.modified().ok()?;
    written
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under `ProtectProc=invisible` the grace gate saw no daemon restart at all; the pid file
    /// of the socket's peer now gives its start, and a stale one (another pid) is not believed.
    #[test]
    fn a_pid_file_holding_the_peers_pid_gives_the_daemons_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("docker.pid");
        std::fs::write(&file, "4242\n").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let started = started_per_pid_file(&file, 4242).expect("the pid matches");
        assert!(now.abs_diff(started) < 5, "{now} vs {started}");
        assert_eq!(
            started_per_pid_file(&file, 4243),
            None,
            "another daemon's file"
        );
        assert_eq!(started_per_pid_file(&dir.path().join("none"), 4242), None);
    }
}
