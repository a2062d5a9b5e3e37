//! The one report every command produces, and how it is shown.
//!
//! Built once at the end of a command from what happened; the sinks (text on a terminal, JSON
//! for scripts) only render it. The JSON field names are a documented contract (docs/report.md).

use crate::gates::GateResult;
use crate::plan::{Candidate, Class};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pruned,
    NothingToDo,
    Skipped,
    DryRun,
    Error,
    /// `check` only: every gate open.
    Open,
    /// `check` only: some gate closed.
    Closed,
}

impl Outcome {
    /// The process exit code for this outcome (documented in docs/cli.md).
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Pruned | Outcome::NothingToDo | Outcome::DryRun | Outcome::Open => 0,
            Outcome::Skipped | Outcome::Closed => 10,
            Outcome::Error => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Done,
    Skipped,
    WouldRemove,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub class: Class,
    pub status: StepStatus,
    pub count: usize,
    pub reclaimed_bytes: u64,
    /// Object ids removed (or, in a dry run, that would be).
    pub items: Vec<String>,
    /// Why the step was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Dry run only: each object with its size and what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<Candidate>>,
    /// Dry run, build cache only: records that hold a layer shared with an image. If the images
    /// step removes the last image using that layer, the daemon prunes the record as well; the
    /// Engine API does not say which image a record belongs to, so these are listed apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub may_also_remove: Option<Vec<Candidate>>,
}

impl StepReport {
    pub fn skipped(class: Class, reason: impl Into<String>) -> Self {
        Self {
            class,
            status: StepStatus::Skipped,
            count: 0,
            reclaimed_bytes: 0,
            items: Vec::new(),
            reason: Some(reason.into()),
            objects: None,
            may_also_remove: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub outcome: Outcome,
    pub docker_host: String,
    pub older_than: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub gates: Vec<GateResult>,
    pub steps: Vec<StepReport>,
    pub reclaimed_bytes: u64,
    pub api_calls: usize,
    /// The gate that closed between steps and stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<GateResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

impl Report {
    /// A report for a command that failed before it could read the daemon.
    pub fn failed(
        command: &'static str,
        docker_host: &str,
        older_than: &str,
        error: String,
    ) -> Self {
        Report {
            command,
            outcome: Outcome::Error,
            docker_host: docker_host.to_string(),
            older_than: older_than.to_string(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            duration_ms: 0,
            gates: Vec::new(),
            steps: Vec::new(),
            reclaimed_bytes: 0,
            api_calls: 0,
            stopped_by: None,
            error: Some(error),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report always serializes")
    }

    /// The human rendering: one line per gate, one per step, dry-run objects indented.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let outcome = serde_json::to_value(self.outcome).ok();
        let outcome = outcome.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
        let _ = writeln!(
            out,
            "prunegate {}: {outcome} ({})",
            self.command, self.docker_host
        );
        for g in &self.gates {
            let state = match (g.enabled, g.open) {
                (false, _) => "off   ",
                (true, true) => "open  ",
                (true, false) => "CLOSED",
            };
            let _ = writeln!(out, "  gate {:<10} {state} {}", g.name.as_str(), g.reason);
        }
        if let Some(g) = &self.stopped_by {
            let _ = writeln!(
                out,
                "  stopped: gate {} closed before a step: {}",
                g.name.as_str(),
                g.reason
            );
        }
        for s in &self.steps {
            let status = serde_json::to_value(s.status).ok();
            let status = status.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
            let _ = write!(
                out,
                "  step {:<11} {status:<12} {} objects, {}",
                s.class.as_str(),
                s.count,
                human_bytes(s.reclaimed_bytes)
            );
            if let Some(r) = &s.reason {
                let _ = write!(out, " ({r})");
            }
            out.push('\n');
            for o in s.objects.iter().flatten() {
                write_object(&mut out, o);
            }
            if let Some(maybe) = &s.may_also_remove {
                let _ = writeln!(
                    out,
                    "    and possibly {} records whose layers only the removed images used:",
                    maybe.len()
                );
                for o in maybe {
                    write_object(&mut out, o);
                }
            }
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  error: {e}");
        }
        if self.command != "check" {
            let _ = write!(out, "  reclaimed {}, ", human_bytes(self.reclaimed_bytes));
        } else {
            out.push_str("  ");
        }
        let _ = writeln!(out, "{} API calls, {} ms", self.api_calls, self.duration_ms);
        out
    }
}

/// One dry-run object: short id, size, what it is.
fn write_object(out: &mut String, o: &Candidate) {
    let _ = writeln!(
        out,
        "    {}  {:>9}  {}",
        short(&o.id),
        human_bytes(o.size_bytes),
        o.description
    );
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Outcome::Pruned.exit_code(), 0);
        assert_eq!(Outcome::NothingToDo.exit_code(), 0);
        assert_eq!(Outcome::DryRun.exit_code(), 0);
        assert_eq!(Outcome::Open.exit_code(), 0);
        assert_eq!(Outcome::Skipped.exit_code(), 10);
        assert_eq!(Outcome::Closed.exit_code(), 10);
        assert_eq!(Outcome::Error.exit_code(), 1);
    }

    #[test]
    fn bytes_are_readable() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
