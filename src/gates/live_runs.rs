//! The live-runs gate: closed while a CI run (a swarm stack or compose project whose name matches
//! `gates.live_runs.pattern`) is live on this host.
//!
//! A run in flight has stopped containers and fresh dangling images that it may still want (a
//! test container inspected after it exits, an image about to be tagged); pruning under it is how
//! pruners break builds. The default pattern matches every name, so an untuned host is safe.

use super::{engine_or_closed, GateName, GateResult};
use crate::docker::snapshot::Snapshot;
use crate::engine::SwarmRole;
use crate::model::{COMPOSE_LABEL, STACK_LABEL};
use crate::settings::LiveRunsGate;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Stack,
    ComposeProject,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LiveName {
    pub kind: Kind,
    pub name: String,
    /// `services` or `containers`: which listing showed it.
    pub seen_on: &'static str,
}

/// A container that has finished (`exited`, `dead`) does not make its project live.
fn is_live(c: &ContainerSummary) -> bool {
    !matches!(
        c.state,
        Some(ContainerSummaryStateEnum::EXITED) | Some(ContainerSummaryStateEnum::DEAD)
    )
}

fn label<'a>(labels: Option<&'a HashMap<String, String>>, key: &str) -> Option<&'a str> {
    labels.and_then(|l| l.get(key)).map(String::as_str)
}

pub fn evaluate(cfg: &LiveRunsGate, snapshot: &Snapshot) -> GateResult {
    let name = GateName::LiveRuns;
    if !cfg.enabled {
        return GateResult::disabled(name);
    }
    let engine = match engine_or_closed(name, snapshot) {
        Ok(e) => e,
        Err(closed) => return closed,
    };
    // Stacks: a manager lists them from services (even with 0 replicas running); other nodes see
    // only the task containers placed on them.
    let stacks_from_services = engine.swarm == SwarmRole::Manager;
    match live_names(snapshot, stacks_from_services) {
        Ok(live) => verdict(cfg, &live, stacks_from_services),
        Err(closed) => closed,
    }
}

/// Every live stack and compose project the snapshot shows, or the gate closed because a
/// listing it needs could not be read.
fn live_names(
    snapshot: &Snapshot,
    stacks_from_services: bool,
) -> Result<BTreeSet<LiveName>, GateResult> {
    let closed = |what: &str, e: &crate::model::ReadError| {
        GateResult::closed(
            GateName::LiveRuns,
            format!("cannot list {what}: {e}"),
            json!({ "error": e }),
        )
    };
    let containers = snapshot
        .containers
        .as_ref()
        .map_err(|e| closed("containers", e))?;
    let mut live: BTreeSet<LiveName> = BTreeSet::new();
    let mut add = |kind, name: &str, seen_on| {
        live.insert(LiveName {
            kind,
            name: name.to_string(),
            seen_on,
        });
    };
    if stacks_from_services {
        let services = snapshot
            .services
            .as_ref()
            .map_err(|e| closed("swarm services", e))?;
        for s in services {
            let labels = s.spec.as_ref().and_then(|sp| sp.labels.as_ref());
            if let Some(stack) = label(labels, STACK_LABEL) {
                add(Kind::Stack, stack, "services");
            }
        }
    }
    for c in containers.iter().filter(|c| is_live(c)) {
        let labels = c.labels.as_ref();
        if let Some(project) = label(labels, COMPOSE_LABEL) {
            add(Kind::ComposeProject, project, "containers");
        }
        if !stacks_from_services {
            if let Some(stack) = label(labels, STACK_LABEL) {
                add(Kind::Stack, stack, "containers");
            }
        }
    }
    Ok(live)
}

/// Closed when any live name matches the pattern, naming the first.
fn verdict(
    cfg: &LiveRunsGate,
    live: &BTreeSet<LiveName>,
    stacks_from_services: bool,
) -> GateResult {
    let name = GateName::LiveRuns;
    let matched: Vec<&LiveName> = live
        .iter()
        .filter(|l| cfg.regex.is_match(&l.name))
        .collect();
    let evidence = json!({
        "pattern": cfg.pattern,
        "stacks_from": if stacks_from_services { "services" } else { "containers" },
        "live": live,
        "matched": matched,
    });
    let Some(first) = matched.first() else {
        return GateResult::open(
            name,
            format!(
                "no live stack or compose project matches gates.live_runs.pattern {:?} ({} live, none matching)",
                cfg.pattern,
                live.len()
            ),
            evidence,
        );
    };
    let kind = match first.kind {
        Kind::Stack => "stack",
        Kind::ComposeProject => "compose project",
    };
    let more = if matched.len() > 1 {
        format!(" and {} more", matched.len() - 1)
    } else {
        String::new()
    };
    GateResult::closed(
        name,
        format!(
            "live {kind} {:?}{more} matches gates.live_runs.pattern {:?}; narrow that key to the names of CI runs if this is not one",
            first.name, cfg.pattern
        ),
        evidence,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::fixtures;

    fn eval(pattern: &str, snap: &Snapshot) -> GateResult {
        evaluate(&LiveRunsGate::new(true, pattern).unwrap(), snap)
    }

    #[test]
    fn a_live_stack_closes_it_by_default_and_a_narrow_pattern_opens_it() {
        let snap = fixtures::load("swarm_live_stack");
        let g = eval(".*", &snap);
        assert!(!g.open, "{}", g.reason);
        assert!(g.reason.contains("\"ci-1234\""), "{}", g.reason);
        assert!(g.reason.contains("gates.live_runs.pattern"));
        assert!(eval("^ci-\\d+$", &snap).reason.contains("ci-1234"));
        assert!(eval("^nightly-", &snap).open);
    }

    #[test]
    fn running_compose_project_closes_it_and_exited_one_does_not() {
        let snap = fixtures::load("standalone_compose");
        let g = eval("^build-", &snap);
        assert!(!g.open);
        assert!(
            g.reason.contains("compose project \"build-77\""),
            "{}",
            g.reason
        );
        // The project `old-run` only has exited containers in that snapshot.
        let g = eval("^old-run$", &snap);
        assert!(g.open, "{}", g.reason);
    }

    #[test]
    fn idle_host_is_open() {
        let g = eval(".*", &fixtures::load("standalone_idle"));
        assert!(g.open, "{}", g.reason);
    }

    #[test]
    fn unreadable_containers_close_it() {
        let mut snap = fixtures::load("standalone_idle");
        snap.containers = Err(crate::model::ReadError {
            status: None,
            message: "no answer within 30s".into(),
        });
        let g = eval("^ci-", &snap);
        assert!(!g.open && g.reason.contains("no answer within 30s"));
    }

    #[test]
    fn manager_with_unreadable_services_is_closed() {
        let mut snap = fixtures::load("swarm_live_stack");
        snap.services = Err(crate::model::ReadError {
            status: Some(503),
            message: "The swarm does not have a leader".into(),
        });
        let g = eval("^nightly-", &snap);
        assert!(!g.open && g.reason.contains("does not have a leader"));
    }
}
