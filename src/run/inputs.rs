//! Everything the gates judge, read once per check: one snapshot of the daemon, the disk the
//! disk gate watches, the uptimes. The only place that decides which filesystem is measured:
//! `gates.disk.path` when set, else the engine's data root.

use crate::disk::{self, DiskPathSource, DiskReading};
use crate::docker::snapshot::Snapshot;
use crate::docker::Daemon;
use crate::engine::Engine;
use crate::gates::GateInputs;
use crate::model::{Command, Read, ReadError};
use crate::settings::{DiskGate, Settings};
use crate::uptime::{self, Uptime};

/// Reads the filesystem the disk gate watches: the configured path, else the engine's data
/// root (an error when neither is known: no path set and no `/info`).
pub fn disk_reading(gate: &DiskGate, engine: &Read<Engine>) -> Read<DiskReading> {
    let (path, source) = match &gate.path {
        Some(p) => (p.clone(), DiskPathSource::Config),
        None => (
            engine.as_ref().map_err(Clone::clone)?.data_root()?,
            DiskPathSource::DockerRootDir,
        ),
    };
    Ok(disk::read(path, source))
}

/// The disk reading a `run` can take before it contacts the daemon: when the gate is on and
/// its path is configured. A healthy host then costs one statvfs (no lock, no connection).
pub fn disk_before_daemon(settings: &Settings, command: Command) -> Option<DiskReading> {
    let gate = &settings.gates.disk;
    let path = gate
        .path
        .as_ref()
        .filter(|_| command == Command::Run && gate.enabled)?;
    Some(disk::read(path.clone(), DiskPathSource::Config))
}

/// Reads every gate input once. `early` is a disk reading already taken for this run (see
/// [`disk_before_daemon`]): reused, not taken again.
pub async fn read(
    settings: &Settings,
    command: Command,
    daemon: &Daemon,
    early: Option<DiskReading>,
) -> GateInputs {
    let snapshot = Snapshot::take(daemon).await;
    let disk = match early {
        Some(reading) => Ok(reading),
        None if command == Command::Reclaim => {
            Err(ReadError::local("not read: reclaim skips the disk gate"))
        }
        None if !settings.gates.disk.enabled => {
            Err(ReadError::local("not read: gates.disk is disabled"))
        }
        None => disk_reading(&settings.gates.disk, &snapshot.engine),
    };
    let uptime = if settings.gates.grace.enabled {
        uptime::read(&daemon.address)
    } else {
        Uptime::unknown()
    };
    GateInputs {
        snapshot,
        disk,
        uptime,
    }
}
