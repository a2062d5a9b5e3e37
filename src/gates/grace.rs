//! The grace gate: closed for a while after the host or the Docker daemon starts.
//!
//! After a reboot, containers with restart policies are still coming back and stopped ones may
//! be about to be restarted by a deploy; a persistent timer catching up on a missed run fires
//! exactly then. Waiting `gates.grace.min_uptime` (15 minutes by default) avoids pruning what
//! is only momentarily stopped.

use super::{GateName, GateResult};
use crate::model::humanize;
use crate::settings::GraceGate;
use crate::uptime::Uptime;
use serde_json::json;

pub fn evaluate(cfg: &GraceGate, uptime: &Uptime) -> GateResult {
    let name = GateName::Grace;
    if !cfg.enabled {
        return GateResult::disabled(name);
    }
    let min = cfg.min_uptime.as_std().as_secs();
    let daemon = uptime.daemon_seconds.as_ref().ok().copied();
    let evidence = json!({
        "min_uptime": cfg.min_uptime.as_str(),
        "host_uptime_seconds": uptime.host_seconds,
        "daemon_uptime_seconds": daemon,
        "daemon_uptime_unknown": uptime.daemon_seconds.as_ref().err(),
    });
    let fmt = |s: u64| humanize(std::time::Duration::from_secs(s));
    if uptime.host_seconds < min {
        return GateResult::closed(
            name,
            format!(
                "the host has been up {} only, less than gates.grace.min_uptime = {}",
                fmt(uptime.host_seconds),
                cfg.min_uptime
            ),
            evidence,
        );
    }
    if let Some(d) = daemon.filter(|d| *d < min) {
        return GateResult::closed(
            name,
            format!(
                "the Docker daemon has been up {} only, less than gates.grace.min_uptime = {}",
                fmt(d),
                cfg.min_uptime
            ),
            evidence,
        );
    }
    let daemon_text = match daemon {
        Some(d) => format!("daemon up {}", fmt(d)),
        None => "daemon uptime unknown".to_string(),
    };
    GateResult::open(
        name,
        format!(
            "host up {}, {daemon_text}: past gates.grace.min_uptime = {}",
            fmt(uptime.host_seconds),
            cfg.min_uptime
        ),
        evidence,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::GoDuration;

    fn cfg(min: &str) -> GraceGate {
        GraceGate {
            enabled: true,
            min_uptime: GoDuration::parse(min).unwrap(),
        }
    }

    #[test]
    fn closed_after_boot_and_after_a_daemon_restart() {
        let boot = Uptime {
            host_seconds: 120,
            daemon_seconds: Ok(100),
        };
        let g = evaluate(&cfg("15m"), &boot);
        assert!(
            !g.open && g.reason.contains("host has been up 2m"),
            "{}",
            g.reason
        );
        let restarted = Uptime {
            host_seconds: 86_400,
            daemon_seconds: Ok(30),
        };
        let g = evaluate(&cfg("15m"), &restarted);
        assert!(
            !g.open && g.reason.contains("Docker daemon has been up 30s"),
            "{}",
            g.reason
        );
    }

    #[test]
    fn open_once_both_are_old_enough_or_the_daemon_is_unknown() {
        assert!(
            evaluate(
                &cfg("15m"),
                &Uptime {
                    host_seconds: 3600,
                    daemon_seconds: Ok(1800)
                }
            )
            .open
        );
        let unknown = Uptime {
            host_seconds: 3600,
            daemon_seconds: Err("not a local socket".into()),
        };
        let g = evaluate(&cfg("15m"), &unknown);
        assert!(g.open && g.reason.contains("unknown"));
        assert!(
            evaluate(
                &cfg("0s"),
                &Uptime {
                    host_seconds: 1,
                    daemon_seconds: Ok(0)
                }
            )
            .open
        );
    }
}
