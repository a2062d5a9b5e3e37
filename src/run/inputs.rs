//! Everything the gates judge, read once per check: one snapshot of the daemon, the disks the
//! disk gate watches, the uptimes. The only place that decides which filesystems are measured:
//! `gates.disk.paths` (or `path`) when set, else the engine's own (`Engine::data_paths`).

use crate::disk::{self, DiskPathSource, DiskReading};
use crate::docker::snapshot::Snapshot;
use crate::docker::transport::TlsFiles;
use crate::docker::Daemon;
use crate::engine::Engine;
use crate::gates::GateInputs;
use crate::model::{Command, Read, ReadError};
use crate::settings::{DiskGate, GateSettings, Settings};
use crate::uptime::{self, Uptime};

/// Reads every filesystem the disk gate watches: the configured paths, else the engine's own
/// (an error when neither is known: no path set and no `/info`).
pub fn disk_reading(gate: &DiskGate, engine: &Read<Engine>) -> Read<Vec<DiskReading>> {
    if gate.paths.is_empty() {
        let paths = engine.as_ref().map_err(Clone::clone)?.data_paths()?;
        Ok(paths.into_iter().map(|(p, s)| disk::read(p, s)).collect())
    } else {
        Ok(configured(gate))
    }
}

/// Reads `gates.disk.paths`.
fn configured(gate: &DiskGate) -> Vec<DiskReading> {
    let paths = gate.paths.iter().cloned();
    paths
        .map(|p| disk::read(p, DiskPathSource::Config))
        .collect()
}

/// The disk readings a `run` can take before it contacts the daemon: when the gate is on and
/// its paths are configured. A healthy host then costs a statvfs per path (no lock, no
/// connection).
pub fn disk_before_daemon(gate: &DiskGate, command: Command) -> Option<Vec<DiskReading>> {
    if command != Command::Run || !gate.enabled || gate.paths.is_empty() {
        return None;
    }
    Some(configured(gate))
}

/// The daemon in force, with the managers a worker asks (`swarm.managers`, TLS with the
/// certificates in `swarm.cert_path`). Connecting is lazy: nothing is sent here.
pub fn connect(settings: &Settings) -> Result<Daemon, String> {
    let daemon = Daemon::connect(
        &settings.address,
        settings.tls.as_ref(),
        settings.max_answer,
        settings.read_timeout,
        settings.prune_timeout,
    )?;
    let managers = settings
        .managers
        .iter()
        .map(|m| match &settings.cert_path {
            Some(dir) => Daemon::connect(
                m,
                Some(&TlsFiles { dir: dir.clone() }),
                settings.max_answer,
                settings.read_timeout,
                settings.read_timeout,
            ),
            None => Err(format!("{}: swarm.cert_path is not set", m.as_str())),
        })
        .collect();
    Ok(daemon.with_managers(managers))
}

/// Reads every gate input once. `early` is a disk reading already taken for this run (see
/// [`disk_before_daemon`]): reused, not taken again.
pub async fn read(
    gates: &GateSettings,
    command: Command,
    daemon: &Daemon,
    early: Option<Vec<DiskReading>>,
) -> GateInputs {
    let snapshot = Snapshot::take(daemon).await;
    let disk = match early {
        Some(reading) => Ok(reading),
        None if command == Command::Reclaim => {
            Err(ReadError::local("not read: reclaim skips the disk gate"))
        }
        None if !gates.disk.enabled => Err(ReadError::local("not read: gates.disk is disabled")),
        None => disk_reading(&gates.disk, &snapshot.engine),
    };
    // The grace gate judges it (the retention class reads the daemon's start itself, after
    // its replay of the events).
    let uptime = if gates.grace.enabled {
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
