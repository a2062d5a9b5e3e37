//! The disk gate: open only when the filesystem holding Docker's data is under pressure.
//!
//! This is what keeps the image cache warm on a healthy host: below the thresholds there is
//! nothing to win by pruning, and every pruned dangling layer may be one a rebuild wanted.

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

pub fn evaluate(cfg: &DiskGate, reading: &Result<DiskReading, ReadError>) -> GateResult {
    let name = GateName::Disk;
    if !cfg.enabled {
        return GateResult::disabled(name);
    }
    let reading = match reading {
        Ok(r) => r,
        Err(e) => {
            return GateResult::closed(
                name,
                format!("cannot tell which filesystem to measure (set gates.disk.path): {e}"),
                json!({ "error": e }),
            )
        }
    };
    let path = reading.path.display().to_string();
    let stat = match &reading.stat {
        Ok(s) => s,
        Err(e) => {
            return GateResult::closed(
                name,
                format!("cannot measure {path}: {e}"),
                json!({ "path": path, "path_source": reading.path_source, "error": e }),
            )
        }
    };
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
    });
    let show = |p: Option<u8>| p.map_or("-".to_string(), |p| format!("{p}%"));
    let (blocks_hit, inodes_hit) = over_thresholds(cfg, stat);
    let summary = format!("{path} is {} used, {} of inodes", show(used), show(inodes));
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
    ) -> Result<DiskReading, ReadError> {
        Ok(DiskReading {
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
        })
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
        r.stat = Err("cannot stat /nope: No such file or directory".into());
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
    fn disabled_is_open_and_says_so() {
        let cfg = DiskGate {
            enabled: false,
            ..Default::default()
        };
        let g = evaluate(&cfg, &reading(100, 100, 100, 100));
        assert!(g.open && !g.enabled && g.reason.contains("gates.disk.enabled"));
    }
}
