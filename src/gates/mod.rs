//! Gates: pure decisions over [`GateInputs`]: one [`Snapshot`], one disk reading, one uptime.
//!
//! Each gate lives in its own file and returns a [`GateResult`]: open or closed, a one-line
//! reason a person can act on, and the evidence it looked at. No gate does I/O (run/inputs.rs
//! reads what they judge), so each can be unit-tested on snapshots captured from a real daemon.
//! A gate whose inputs could not be read is closed: not knowing is never a reason to delete.

pub mod converging;
pub mod disk;
pub mod grace;
pub mod live_runs;

use crate::disk::DiskReading;
use crate::docker::snapshot::Snapshot;
use crate::engine::Engine;
use crate::model::{Command, Read};
use crate::settings::GateSettings;
use crate::uptime::Uptime;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GateName {
    Disk,
    LiveRuns,
    Converging,
    Grace,
    /// Not a gate over the snapshot: the run lock, reported in the same shape when it is held.
    Lock,
}

impl GateName {
    pub fn as_str(self) -> &'static str {
        match self {
            GateName::Disk => "disk",
            GateName::LiveRuns => "live_runs",
            GateName::Converging => "converging",
            GateName::Grace => "grace",
            GateName::Lock => "lock",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateResult {
    pub name: GateName,
    pub open: bool,
    /// False when switched off in the config (it is then open, and says so).
    pub enabled: bool,
    pub reason: String,
    pub evidence: serde_json::Value,
}

impl GateResult {
    pub fn open(name: GateName, reason: impl Into<String>, evidence: serde_json::Value) -> Self {
        Self {
            name,
            open: true,
            enabled: true,
            reason: reason.into(),
            evidence,
        }
    }

    pub fn closed(name: GateName, reason: impl Into<String>, evidence: serde_json::Value) -> Self {
        Self {
            name,
            open: false,
            enabled: true,
            reason: reason.into(),
            evidence,
        }
    }

    pub fn disabled(name: GateName) -> Self {
        Self {
            name,
            open: true,
            enabled: false,
            reason: format!("disabled by gates.{}.enabled = false", name.as_str()),
            evidence: serde_json::Value::Null,
        }
    }
}

/// Gate results that did not come out open, for "stopped because …" lines.
pub fn first_closed(gates: &[GateResult]) -> Option<&GateResult> {
    gates.iter().find(|g| !g.open)
}

/// Everything the gates judge, read once per check (run/inputs.rs reads it).
#[derive(Debug, Clone)]
pub struct GateInputs {
    pub snapshot: Snapshot,
    /// The filesystems the disk gate watches; an error when they could not be known, or were
    /// not read (the gate is off, or the command does not judge it).
    pub disk: Read<Vec<DiskReading>>,
    pub uptime: Uptime,
}

/// Every gate, in report order. `reclaim` does not judge the disk gate, and says so.
pub fn evaluate_all(
    settings: &GateSettings,
    command: Command,
    inputs: &GateInputs,
) -> Vec<GateResult> {
    let disk = if command == Command::Reclaim {
        GateResult::open(
            GateName::Disk,
            "not judged: reclaim skips the disk gate",
            serde_json::Value::Null,
        )
    } else {
        disk::evaluate(&settings.disk, &inputs.disk)
    };
    let [live, converging] = activity(settings, &inputs.snapshot);
    let grace = grace::evaluate(&settings.grace, &inputs.uptime);
    vec![disk, live, converging, grace]
}

/// The gates that depend only on what the daemon is doing: re-judged before every step.
pub fn activity(settings: &GateSettings, snapshot: &Snapshot) -> [GateResult; 2] {
    [
        live_runs::evaluate(&settings.live_runs, snapshot),
        converging::evaluate(&settings.converging, snapshot),
    ]
}

/// Shared by the swarm-wide gates: on a worker that asked a manager, the result names it, in
/// the reason and as `swarm_from` in the evidence (the decision is that manager's view).
fn as_seen_by(mut g: GateResult, snapshot: &Snapshot) -> GateResult {
    if let Some(manager) = snapshot.swarm_source.manager() {
        g.reason = format!("{} (swarm as manager {manager} sees it)", g.reason);
        if let Some(ev) = g.evidence.as_object_mut() {
            ev.insert("swarm_from".into(), manager.into());
        }
    }
    g
}

/// Shared by the gates that read the daemon: a listing `what` that could not be read closes
/// `name`, with the error as its reason and evidence.
fn unreadable(name: GateName, what: &str, e: &crate::model::ReadError) -> GateResult {
    GateResult::closed(
        name,
        format!("cannot list {what}: {e}"),
        serde_json::json!({ "error": e }),
    )
}

/// Shared by the gates that read the daemon: a daemon whose info cannot be read closes them.
fn engine_or_closed(name: GateName, snapshot: &Snapshot) -> Result<&Engine, GateResult> {
    snapshot.engine.as_ref().map_err(|e| {
        GateResult::closed(
            name,
            format!("cannot read the daemon's info: {e}"),
            serde_json::json!({ "error": e }),
        )
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Snapshots captured from a real private dockerd with `prunegate debug snapshot`
    //! (see tests/fixtures/README.md for how each one was made).
    use crate::docker::snapshot::Snapshot;

    pub fn load(name: &str) -> Snapshot {
        let path = format!("snapshots/{name}.json");
        serde_json::from_slice(&crate::model::fixture(&path))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}
