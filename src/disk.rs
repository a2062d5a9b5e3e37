//! Disk usage of one filesystem, computed the way `df` computes it.
//!
//! `df`'s Use% is `used / (used + available)` rounded up, where `used = blocks − free` and
//! `available` is what unprivileged users may still allocate. The root-reserved blocks therefore
//! count neither as used nor as available, which is why `df` can show 100% before the disk is
//! literally full. Operators read `df`; the gate must agree with it to the percent.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the disk reading's path came from, so the report can say which key changes it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DiskPathSource {
    /// `gates.disk.paths` (or `gates.disk.path`).
    Config,
    /// The daemon's `DockerRootDir`, from `/info`.
    DockerRootDir,
    /// A system containerd's root, `/var/lib/containerd`, on the containerd image store
    /// (`/info` `Containerd.Address` is containerd's default socket).
    ContainerdRoot,
}

/// The raw counters of `statvfs(2)`, in fragment-size units for blocks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct FsStat {
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

/// A reading of the filesystem holding `path`, or why it could not be taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DiskReading {
    pub path: PathBuf,
    pub path_source: DiskPathSource,
    pub stat: Result<FsStat, String>,
}

/// Reads `statvfs` for `path`. A missing path or one that is not a directory is reported as an
/// error (the gate then fails closed) rather than falling back to some parent filesystem.
pub fn read(path: PathBuf, path_source: DiskPathSource) -> DiskReading {
    let stat = match std::fs::metadata(&path) {
        Err(e) => Err(format!("cannot stat {}: {e}", path.display())),
        Ok(m) if !m.is_dir() => Err(format!("{} is not a directory", path.display())),
        // The statvfs field types differ between platforms (u32 on some 32-bit libcs).
        #[allow(clippy::unnecessary_cast)]
        Ok(_) => nix::sys::statvfs::statvfs(&path)
            .map(|s| FsStat {
                fragment_size: s.fragment_size() as u64,
                blocks: s.blocks() as u64,
                blocks_free: s.blocks_free() as u64,
                blocks_available: s.blocks_available() as u64,
                files: s.files() as u64,
                files_free: s.files_free() as u64,
            })
            .map_err(|e| format!("statvfs {}: {e}", path.display())),
    };
    DiskReading {
        path,
        path_source,
        stat,
    }
}

/// `ceil(used * 100 / (used + available))`, or `None` where `df` prints `-` (nothing to divide).
pub fn df_percent(used: u64, available: u64) -> Option<u8> {
    let total = u128::from(used) + u128::from(available);
    if total == 0 {
        return None;
    }
    let used100 = u128::from(used) * 100;
    let pct = used100 / total + u128::from(used100 % total != 0);
    Some(pct.min(100) as u8)
}

impl FsStat {
    /// Bytes used and available as `df` counts them (the root reserve is neither).
    pub fn used_and_available_bytes(&self) -> (u64, u64) {
        (
            self.blocks.saturating_sub(self.blocks_free) * self.fragment_size,
            self.blocks_available * self.fragment_size,
        )
    }

    /// Use% as `df` prints it.
    pub fn used_percent(&self) -> Option<u8> {
        df_percent(
            self.blocks.saturating_sub(self.blocks_free),
            self.blocks_available,
        )
    }

    /// IUse% as `df -i` prints it: inodes have no root reserve, so available is `f_ffree`.
    /// `None` on filesystems without a fixed inode table (btrfs reports 0 inodes).
    pub fn inodes_used_percent(&self) -> Option<u8> {
        df_percent(self.files.saturating_sub(self.files_free), self.files_free)
    }

    pub fn size_bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.fragment_size)
    }

    pub fn available_bytes(&self) -> u64 {
        self.blocks_available.saturating_mul(self.fragment_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(blocks: u64, free: u64, avail: u64) -> FsStat {
        FsStat {
            fragment_size: 4096,
            blocks,
            blocks_free: free,
            blocks_available: avail,
            files: 1000,
            files_free: 1000,
        }
    }

    #[test]
    fn rounds_up_like_df() {
        // 1 block used of 1000 available: df shows 1%, not 0%.
        assert_eq!(stat(1001, 1000, 1000).used_percent(), Some(1));
        assert_eq!(stat(100, 20, 20).used_percent(), Some(80));
        assert_eq!(stat(100, 0, 0).used_percent(), Some(100));
        assert_eq!(stat(100, 100, 100).used_percent(), Some(0));
    }

    #[test]
    fn reserved_blocks_count_as_neither_used_nor_available() {
        // 1000 blocks, 300 free of which only 250 available to non-root: used 700 / (700+250).
        assert_eq!(stat(1000, 300, 250).used_percent(), Some(74));
    }

    #[test]
    fn no_inodes_means_unknown() {
        let mut s = stat(100, 50, 50);
        s.files = 0;
        s.files_free = 0;
        assert_eq!(s.inodes_used_percent(), None);
        s.files = 1000;
        s.files_free = 199;
        assert_eq!(s.inodes_used_percent(), Some(81));
    }

    #[test]
    fn reads_a_real_directory_and_refuses_a_file() {
        let r = read(std::env::temp_dir(), DiskPathSource::Config);
        assert!(r.stat.unwrap().used_percent().is_some());
        let f = tempfile::NamedTempFile::new().unwrap();
        let r = read(f.path().to_path_buf(), DiskPathSource::Config);
        assert!(r.stat.unwrap_err().contains("not a directory"));
        let r = read("/nonexistent/prunegate".into(), DiskPathSource::Config);
        assert!(r.stat.unwrap_err().contains("cannot stat"));
    }
}
