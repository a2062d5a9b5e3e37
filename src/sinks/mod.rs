//! Where a finished report goes besides stdout: the Prometheus textfile, the audit log, and the
//! state file behind the metrics' totals (`state`, kept here because only the metrics read it),
//! and the retention class's use history (`history`: read at the start of a run, written as it
//! learns), the tags seen on images (`tags`: what tells a superseded pull from cache), and the
//! tagged images' layers already read (`layers`).
//! Sinks only render and store; they decide nothing.

pub mod atomic;
pub mod audit;
pub mod history;
pub mod layers;
pub mod metrics;
pub mod state;
pub mod tags;

use crate::report::Report;
use crate::settings::SinkSettings;
use atomic::write_atomically;

/// Runs every configured sink for a finished pruning run. Failures do not undo anything; they
/// are returned as warnings for the report and the log.
pub fn write_all(sinks: &SinkSettings, report: &Report) -> Vec<String> {
    let mut warnings = Vec::new();
    let now = chrono::Utc::now().timestamp();
    if let Some(path) = &sinks.audit {
        if let Err(e) = audit::append(path, report) {
            warnings.push(format!("audit log not written: {e}"));
        }
    }
    if let Some(path) = &sinks.metrics {
        let state = match state::load(&sinks.state_dir) {
            Ok(mut state) => {
                state.record(report, now);
                if let Err(e) = state::save(&sinks.state_dir, &state) {
                    warnings.push(format!("state not saved (totals will not advance): {e}"));
                }
                Some(state)
            }
            Err(e) => {
                warnings.push(format!("totals left out of the metrics: {e}"));
                None
            }
        };
        let text = metrics::render(sinks.disk_threshold_percent, report, state.as_ref(), now);
        if let Err(e) = write_atomically(path, text.as_bytes(), atomic::PUBLIC) {
            warnings.push(format!("metrics not written: {e}"));
        }
    }
    warnings
}
