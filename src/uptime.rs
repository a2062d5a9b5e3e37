//! How long the host and the Docker daemon have been up, for the grace gate; and when the
//! daemon started, which the retention class's event replay reads right after its answer.
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
        daemon_seconds: daemon_age_ms(address).map(whole_seconds),
    }
}

/// When the daemon at `address` started (Unix seconds), or why that cannot be known: what tells
/// the retention class whether a restart emptied the daemon's event buffer.
pub fn daemon_started(address: &Address) -> Result<i64, String> {
    let age = daemon_age_ms(address)?;
    Ok(start_second(chrono::Utc::now().timestamp_millis(), age))
}

/// The second a process `age_ms` old at `now_ms` started in, from the late end of the ticks'
/// slack: never a second early (a rootless dockerd restarted 0.3 s after the use history's
/// update once read as started a second before it, and the restart that emptied its event
/// buffer went unseen), and late only by the slack (a daemon that started a second before the
/// update must not read as after it either: every image would count as used at each run).
fn start_second(now_ms: i64, age_ms: u64) -> i64 {
    let age = i64::try_from(age_ms).unwrap_or(i64::MAX);
    now_ms
        .saturating_sub(age)
        .saturating_add(TICK_SLACK_MS as i64)
        .div_euclid(1000)
}

fn daemon_age_ms(address: &Address) -> Result<u64, String> {
    let path = address
        .socket_path()
        .ok_or_else(|| "not a local socket: the daemon's start time cannot be known".to_string())?;
    let shown = path.display();
    let stream = UnixStream::connect(path).map_err(|e| format!("connecting to {shown}: {e}"))?;
    let cred = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("SO_PEERCRED on {shown}: {e}"))?;
    let pid = cred.pid();
    if pid <= 0 {
        return Err("the daemon's pid is not visible from here".into());
    }
    let age = proc_age_ms(pid)
        .or_else(|| {
            PID_FILES
                .iter()
                .find_map(|f| age_per_pid_file(std::path::Path::new(f), pid))
        })
        .ok_or_else(|| {
            format!(
                "the daemon (pid {pid}) is not visible in /proc from here, and no pid file \
                 ({}) holds its pid",
                PID_FILES.join(", ")
            )
        })?;
    Ok(age)
}

/// The kernel's figures are whole clock ticks, each truncated: an age may read up to a tick
/// or two long.
const TICK_SLACK_MS: u64 = 20;

/// An age in whole seconds (the grace gate's), rounded *down* after the slack: a daemon counts
/// as younger than it may be, never older. (`sysinfo` counted it from a boot time truncated to
/// the second, up to a second older than it was; [`start_second`] says what that cost.)
fn whole_seconds(age_ms: u64) -> u64 {
    age_ms.saturating_sub(TICK_SLACK_MS) / 1000
}

/// The age of process `pid` from `/proc`, to the clock tick: `/proc/uptime` less the
/// process's start (`starttime`, ticks after boot). Both count from boot, so neither the
/// wall clock nor a boot time truncated to the second enters.
fn proc_age_ms(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    age_ms(&stat, &uptime, u64::try_from(hz).ok()?)
}

/// `stat`: `/proc/PID/stat`; `uptime`: `/proc/uptime`; `hz`: clock ticks per second. The
/// command name (field 2) is in parentheses and may hold anything, `)` and spaces too: the
/// fields are counted from its last `)`.
fn age_ms(stat: &str, uptime: &str, hz: u64) -> Option<u64> {
    let fields = &stat[stat.rfind(')')? + 1..];
    // Field 22, the 20th after the command name.
    let ticks: u64 = fields.split_whitespace().nth(19)?.parse().ok()?;
    let up: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    if hz == 0 || !up.is_finite() || up < 0.0 {
        return None;
    }
    let up_ms = (up * 1000.0) as u64;
    Some(up_ms.saturating_sub(ticks.checked_mul(1000)? / hz))
}

/// Where dockerd writes its pid at start (its `--pidfile` default; `/var/run` is a link to
/// `/run` on every current distribution).
const PID_FILES: [&str; 2] = ["/run/docker.pid", "/var/run/docker.pid"];

/// How long ago (milliseconds) `file` was written, when it holds `pid`: the daemon's age.
fn age_per_pid_file(file: &std::path::Path, pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    if text.trim().parse::<i32>().ok()? != pid {
        return None;
    }
    let written = std::fs::metadata(file).ok()?.modified().ok()?;
    // A file written "in the future" (a clock stepped back since) is as young as can be.
    Some(
        written
            .elapsed()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    )
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
        let age = age_per_pid_file(&file, 4242).expect("the pid matches");
        assert!(age < 5_000, "{age} ms");
        assert_eq!(age_per_pid_file(&file, 4243), None, "another daemon's file");
        assert_eq!(age_per_pid_file(&dir.path().join("none"), 4242), None);
    }

    /// Captured from this machine: `cat`'s own stat read with `/proc/uptime` (45441.77 s,
    /// start 4544177 ticks at 100 Hz: age 0); and a command name holding `) (` and spaces.
    #[test]
    fn the_age_is_counted_from_boot_to_the_tick() {
        let stat = "27207 (cat) R 27204 27204 26581 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 \
                    4544177 3133440 401 18446744073709551615 94240301109248";
        assert_eq!(age_ms(stat, "45441.77 45916.58\n", 100), Some(0));
        assert_eq!(age_ms(stat, "45442.07 45916.58\n", 100), Some(300));
        let hostile = "27207 (a) (b ) 9) R 27204 27204 26581 0 -1 4194304 100 0 0 0 0 0 0 0 \
                       20 0 1 0 4544177 3133440";
        assert_eq!(age_ms(hostile, "45443.77 0", 100), Some(2000));
        assert_eq!(age_ms("27207 (cat) R 1 2", "45443.77 0", 100), None);
        assert_eq!(age_ms(stat, "garbage", 100), None);
        assert_eq!(age_ms(stat, "45443.77 0", 0), None);
    }

    /// Its start: a daemon 2.6 s old at 16.1 s started in second 13 (rounding its age to whole
    /// seconds first said 14, a restart after an update made in second 14); one 2.09 s old
    /// started in second 14, and one 2.11 s old in second 13 but for the slack: 14.
    #[test]
    fn a_start_is_placed_to_the_tick_and_never_early() {
        assert_eq!(start_second(16_100, 2_600), 13);
        assert_eq!(start_second(16_100, 2_090), 14);
        assert_eq!(start_second(16_100, 2_110), 14);
        assert_eq!(start_second(16_100, 2_130), 13);
        assert_eq!(start_second(500, 0), 0);
    }

    /// A daemon restarted 0.3 s ago is 0 s old, never 1: the grace gate never takes a daemon
    /// for older than it is.
    #[test]
    fn an_age_rounds_toward_younger() {
        assert_eq!(whole_seconds(300), 0);
        assert_eq!(whole_seconds(1_015), 0);
        assert_eq!(whole_seconds(1_020), 1);
        assert_eq!(whole_seconds(86_400_000), 86_399);
        assert_eq!(whole_seconds(5), 0);
    }
}
