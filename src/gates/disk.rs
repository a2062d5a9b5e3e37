//! The disk gate: open only when a filesystem holding the engine's data is under pressure.
//!
//! This is what keeps the image cache warm on a healthy host: below the thresholds there is
//! nothing to win by pruning, and every pruned dangling layer may be one a rebuild wanted.
//! The engine's data may span filesystems (on the containerd image store, image content lives
//! in containerd's root): every watched one is read, and the fullest decides.

use super::{GateName, GateResult};
use crate::disk::{DiskReading, FsStat};
use crate::model::ReadError;
use crate::settings::DiskGate;
use serde_json::json;

/// Whether blocks and inodes are at or above their thresholds (an unknown percentage is not).
pub fn over_thresholds(cfg: &DiskGate, stat: &FsStat) -> (bool, bool) {
    (
        stat.used_percent().is_some_and(|u| u >= cfg.used_percent),
        stat.inodes_used_percent()
            .is_some_and(|i| i >= cfg.inodes_used_percent),
    )
}

/// The reading that decides: one over a threshold if any, and among those (or among all) the
/// fullest by blocks, then inodes. `None` when a reading has no measurement: the gate cannot
/// be judged then (a watched filesystem that cannot be measured might be the full one).
pub fn fullest<'a>(
    cfg: &DiskGate,
    readings: &'a [DiskReading],
) -> Option<(&'a DiskReading, FsStat)> {
    let measured: Option<Vec<(&DiskReading, FsStat)>> = readings
        .iter()
        .map(|r| r.stat.as_ref().ok().map(|s| (r, *s)))
        .collect();
    measured?.into_iter().max_by_key(|(_, s)| {
        let (blocks, inodes) = over_thresholds(cfg, s);
        (blocks || inodes, s.used_percent(), s.inodes_used_percent())
    })
}

pub fn evaluate(cfg: &DiskGate, readings: &Result<Vec<DiskReading>, ReadError>) -> GateResult {
    let name = GateName::Disk;
    if !cfg.enabled {
        return GateResult::disabled(name);
    }
    let readings = match readings {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => {
            return GateResult::closed(
                name,
                "no filesystem to measure",
                json!({ "error": "no path" }),
            )
        }
        Err(e) => {
            return GateResult::closed(
                name,
                format!("cannot tell which filesystem to measure (set gates.disk.paths): {e}"),
                json!({ "error": e }),
            )
        }
    };
    let filesystems: Vec<_> = readings
        .iter()
        .map(|r| match &r.stat {
            Ok(s) => json!({
                "path": r.path, "path_source": r.path_source,
                "used_percent": s.used_percent(), "inodes_used_percent": s.inodes_used_percent(),
            }),
            Err(e) => json!({ "path": r.path, "path_source": r.path_source, "error": e }),
        })
        .collect();
    if let Some(bad) = readings.iter().find(|r| r.stat.is_err()) {
        let path = bad.path.display().to_string();
        let e = bad.stat.as_ref().err().cloned().unwrap_or_default();
        return GateResult::closed(
            name,
            format!("cannot measure {path}: {e}"),
            json!({ "path": path, "path_source": bad.path_source, "error": e, "filesystems": filesystems }),
        );
    }
    let Some((reading, stat)) = fullest(cfg, readings) else {
        unreachable!("every reading was measured");
    };
    let path = reading.path.display().to_string();
    let used = stat.used_percent();
    let inodes = stat.inodes_used_percent();
    let evidence = json!({
        "path": path,
        "path_source": reading.path_source,
        "used_percent": used,
        "inodes_used_percent": inodes,
        "threshold_used_percent": cfg.used_percent,
        "threshold_inodes_used_percent": cfg.inodes_used_percent,
        "size_bytes": stat.size_bytes(),
        "available_bytes": stat.available_bytes(),
        "filesystems": filesystems,
    });
    let show = |p: Option<u8>| p.map_or("-".to_string(), |p| format!("{p}%"));
    let (blocks_hit, inodes_hit) = over_thresholds(cfg, &stat);
    let mut summary = format!("{path} is {} used, {} of inodes", show(used), show(inodes));
    if readings.len() > 1 {
        summary.push_str(&format!(" (the fullest of {} watched)", readings.len()));
    }
    if blocks_hit || inodes_hit {
        let which = match (blocks_hit, inodes_hit) {
            (true, true) => "space and inode thresholds",
            (true, false) => "space threshold",
            _ => "inode threshold",
        };
        GateResult::open(
            name,
            format!(
                "{summary}: at or above the {which} ({}% / {}%)",
                cfg.used_percent, cfg.inodes_used_percent
            ),
            evidence,
        )
    } else {
        GateResult::closed(
            name,
            format!(
                "{summary}: below gates.disk.used_percent = {} and gates.disk.inodes_used_percent = {}, nothing to do",
                cfg.used_percent, cfg.inodes_used_percent
            ),
            evidence,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::DiskPathSource;

    fn reading(
        blocks: u64,
        free: u64,
        files: u64,
        files_free: u64,
    ) -> Result<Vec<DiskReading>, ReadError> {
        Ok(vec![DiskReading {
            path: "/var/lib/docker".into(),
            path_source: DiskPathSource::DockerRootDir,
            stat: Ok(FsStat {
                fragment_size: 4096,
                blocks,
                blocks_free: free,
                blocks_available: free,
                files,
                files_free,
            }),
        }])
    }

    #[test]
    fn opens_at_the_threshold_not_below() {
        let cfg = DiskGate::default();
        assert!(evaluate(&cfg, &reading(100, 20, 100, 100)).open); // 80%
        let below = evaluate(&cfg, &reading(100, 21, 100, 100)); // 79%
        assert!(!below.open);
        assert!(below.reason.contains("79%"), "{}", below.reason);
    }

    #[test]
    fn inodes_alone_open_it() {
        let cfg = DiskGate::default();
        let r = evaluate(&cfg, &reading(100, 90, 100, 10));
        assert!(r.open);
        assert!(r.reason.contains("inode threshold"));
    }

    #[test]
    fn unreadable_is_closed_with_the_reason() {
        let cfg = DiskGate::default();
        let mut r = reading(1, 1, 1, 1).unwrap();
        r[0].stat = Err("cannot stat /nope: No such file or directory".into());
        let g = evaluate(&cfg, &Ok(r));
        assert!(!g.open);
        assert!(g.reason.contains("/nope"));
        let g = evaluate(
            &cfg,
            &Err(ReadError {
                status: None,
                message: "connection refused".into(),
            }),
        );
        assert!(!g.open && g.reason.contains("connection refused"));
    }

    #[test]
    fn the_fullest_of_several_decides_and_every_one_is_listed() {
        let cfg = DiskGate::default();
        let mut rs = reading(100, 50, 100, 100).unwrap(); // 50%
        let mut containerd = reading(100, 10, 100, 100).unwrap().remove(0); // 90%
        containerd.path = "/var/lib/containerd".into();
        containerd.path_source = DiskPathSource::ContainerdRoot;
        rs.push(containerd);
        let g = evaluate(&cfg, &Ok(rs.clone()));
        assert!(g.open, "{}", g.reason);
        assert!(
            g.reason.starts_with("/var/lib/containerd is 90% used")
                && g.reason.contains("fullest of 2"),
            "{}",
            g.reason
        );
        assert_eq!(g.evidence["path_source"], "containerd_root");
        assert_eq!(g.evidence["filesystems"].as_array().unwrap().len(), 2);
        // Both below: closed, naming the fuller one.
        rs[1].stat.as_mut().unwrap().blocks_available = 30;
        rs[1].stat.as_mut().unwrap().blocks_free = 30;
        let g = evaluate(&cfg, &Ok(rs.clone()));
        assert!(
            !g.open && g.reason.starts_with("/var/lib/containerd is 70% used"),
            "{}",
            g.reason
        );
        // One that cannot be measured closes it, even beside a full one: it might be fuller.
        rs[0].stat = Err("cannot stat /gone: No such file or directory".into());
        rs[1].stat.as_mut().unwrap().blocks_available = 1;
        let g = evaluate(&cfg, &Ok(rs));
        assert!(!g.open && g.reason.contains("/gone"), "{}", g.reason);
    }

    #[test]
    fn disabled_is_open_and_says_so() {
        let cfg = DiskGate {
            enabled: false,
            ..Default::default()
        };
        let g = evaluate(&cfg, &reading(100, 100, 100, 100));
        assert!(g.open && !g.enabled && g.reason.contains("gates.disk.enabled"));
    }
}
