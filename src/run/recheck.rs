//! The re-check every step makes before it destroys anything — one place, for the runner, the
//! images step and the retention class alike. The stop it can end a run with is
//! [`crate::report::Halt`].

use super::inputs::disk_reading;
use crate::disk::DiskReading;
use crate::docker::snapshot::Snapshot;
use crate::docker::Daemon;
use crate::engine::Engine;
use crate::gates;
use crate::model::{Class, Read};
pub use crate::report::Halt;
use crate::report::StepReport;

/// What a step acts on, read right before it: the snapshot the activity gates were judged on,
/// its engine, and the watched filesystems (the retention class judges its watermarks on the
/// disk as the steps before it left it).
pub struct Fresh {
    pub snapshot: Snapshot,
    pub engine: Engine,
    pub disk: Read<Vec<DiskReading>>,
}

/// The re-check before every step: a fresh snapshot, the activity gates judged on it, the
/// watched disks measured (a `statvfs` per path). What the step acts on, or the halt that ends
/// the run ([`halted`] makes the step's report of it).
pub async fn recheck(
    class: Class,
    gates_settings: &crate::settings::GateSettings,
    daemon: &Daemon,
) -> Result<Fresh, Halt> {
    let snapshot = Snapshot::take(daemon).await;
    let disk = disk_reading(&gates_settings.disk, &snapshot.engine);
    let engine = match &snapshot.engine {
        Ok(engine) => engine.clone(),
        Err(e) => {
            return Err(Halt::Lost(format!(
                "lost the Docker daemon before the {} step: {e}",
                class.as_str()
            )))
        }
    };
    if let Some(closed) = gates::first_closed(&gates::activity(gates_settings, &snapshot)) {
        return Err(Halt::Gate(closed.clone()));
    }
    Ok(Fresh {
        snapshot,
        engine,
        disk,
    })
}

/// A step the re-check stopped: skipped, saying why, and the halt that ends the run.
pub fn halted(class: Class, halt: Halt) -> (StepReport, Option<Halt>) {
    (StepReport::skipped(class, halt.note()), Some(halt))
}
