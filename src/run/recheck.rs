//! The stop a prune step can end a run with, and the re-check every step makes before it
//! destroys anything — one place, for the runner and the images step alike.

use crate::docker::snapshot::Snapshot;
use crate::docker::Daemon;
use crate::engine::Engine;
use crate::gates::{self, GateResult};
use crate::model::Class;
use crate::report::{Outcome, Report, StepReport};
use crate::settings::Settings;

/// Why the prune steps stopped before the last one: the one channel a step reports a stop on.
pub enum Halt {
    Interrupted,
    /// The daemon stopped answering before a step; the run's error.
    Lost(String),
    /// An activity gate closed before a step.
    Gate(GateResult),
    /// A prune call failed; the run's error.
    Failed(String),
}

impl Halt {
    /// What stopped: `gate live_runs closed: …`, `interrupted by a signal`, the error.
    pub fn why(&self) -> String {
        match self {
            Halt::Interrupted => "interrupted by a signal".into(),
            Halt::Lost(e) | Halt::Failed(e) => e.clone(),
            Halt::Gate(g) => format!("gate {} closed: {}", g.name.as_str(), g.reason),
        }
    }

    /// The reason given for every step not run because of this halt.
    pub fn note(&self) -> String {
        match self {
            Halt::Interrupted => "not run: interrupted by a signal".into(),
            Halt::Lost(_) => "not run: the daemon stopped answering".into(),
            Halt::Gate(g) => format!("not run: gate {} closed: {}", g.name.as_str(), g.reason),
            Halt::Failed(_) => "not run: an earlier step failed".into(),
        }
    }

    /// Writes the halt into the report and gives the run's outcome.
    pub fn into_report(self, report: &mut Report) -> Outcome {
        match self {
            Halt::Interrupted => Outcome::Interrupted,
            Halt::Lost(error) | Halt::Failed(error) => {
                report.error = Some(error);
                Outcome::Error
            }
            Halt::Gate(gate) => {
                report.stopped_by = Some(gate);
                Outcome::Skipped
            }
        }
    }
}

/// The re-check before every step: a fresh snapshot, the activity gates judged on it. The
/// snapshot and its engine, or the step's report and the halt that ends the run.
pub async fn recheck(
    class: Class,
    settings: &Settings,
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
    if let Some(closed) = gates::first_closed(&gates::activity(&settings.gates, &fresh)) {
        return Err(halted(Halt::Gate(closed.clone())));
    }
    Ok((fresh, engine))
}
