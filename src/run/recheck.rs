//! The re-check every step makes before it destroys anything — one place, for the runner, the
//! images step and the retention class alike. The stop it can end a run with is
//! [`crate::report::Halt`].

use crate::docker::snapshot::Snapshot;
use crate::docker::Daemon;
use crate::engine::Engine;
use crate::gates;
use crate::model::Class;
pub use crate::report::Halt;
use crate::report::StepReport;

/// The re-check before every step: a fresh snapshot, the activity gates judged on it. The
/// snapshot and its engine, or the step's report and the halt that ends the run.
pub async fn recheck(
    class: Class,
    gates_settings: &crate::settings::GateSettings,
    daemon: &Daemon,
) -> Result<(Snapshot, Engine), (StepReport, Option<Halt>)> {
    let halted = |h: Halt| (StepReport::skipped(class, h.note()), Some(h));
    let fresh = Snapshot::take(daemon).await;
    let engine = match &fresh.engine {
        Ok(engine) => engine.clone(),
        Err(e) => {
            return Err(halted(Halt::Lost(format!(
                "lost the Docker daemon before the {} step: {e}",
                class.as_str()
            ))))
        }
    };
    if let Some(closed) = gates::first_closed(&gates::activity(gates_settings, &fresh)) {
        return Err(halted(Halt::Gate(closed.clone())));
    }
    Ok((fresh, engine))
}
