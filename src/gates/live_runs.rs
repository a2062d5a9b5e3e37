//! The live-runs gate: closed while a CI run (a swarm stack or compose project whose name matches
//! `gates.live_runs.pattern`) is live on this host.
//!
//! A run in flight has stopped containers and fresh dangling images that it may still want (a
//! test container inspected after it exits, an image about to be tagged); pruning under it is how
//! pruners break builds. The default pattern matches every name, so an untuned host is safe.

use super::{engine_or_closed, unreadable, GateName, GateResult};
use crate::docker::snapshot::Snapshot;
use crate::engine::SwarmRole;
use crate::model::{COMPOSE_LABEL, STACK_LABEL};
use crate::settings::LiveRunsGate;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum, Task, TaskState};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// `services`, `tasks`, `containers`: the listings that showed it.
    pub seen_on: BTreeSet<&'static str>,
}

/// A container makes its stack or project live while it runs, is paused, or is restarting. One
/// that was only created, or has finished (`exited`, `dead`), or is being removed does not —
/// the prune steps never take anything younger than the cut-off, so a project starting up is
/// not at risk from that.
fn is_live(c: &ContainerSummary) -> bool {
    matches!(
        c.state,
        Some(ContainerSummaryStateEnum::RUNNING)
            | Some(ContainerSummaryStateEnum::PAUSED)
            | Some(ContainerSummaryStateEnum::RESTARTING)
    )
}

/// A task of a removed service (`docker stack rm`) whose container has not stopped yet: swarm
/// marks it desired `remove` and deletes it once it has. Seen by a manager for every node.
fn is_being_removed(t: &Task) -> bool {
    t.desired_state == Some(TaskState::REMOVE)
        && !matches!(
            t.status.as_ref().and_then(|s| s.state),
            Some(TaskState::COMPLETE)
                | Some(TaskState::SHUTDOWN)
                | Some(TaskState::FAILED)
                | Some(TaskState::REJECTED)
                | Some(TaskState::REMOVE)
                | Some(TaskState::ORPHANED)
        )
}

fn label<'a>(labels: Option<&'a HashMap<String, String>>, key: &str) -> Option<&'a str> {
    labels.and_then(|l| l.get(key)).map(String::as_str)
}

/// The gate, saying which manager's view it judged when a worker asked one.
pub fn evaluate(cfg: &LiveRunsGate, snapshot: &Snapshot) -> GateResult {
    super::as_seen_by(judge(cfg, snapshot), snapshot)
}

fn judge(cfg: &LiveRunsGate, snapshot: &Snapshot) -> GateResult {
    let name = GateName::LiveRuns;
    if !cfg.enabled {
        return GateResult::disabled(name);
    }
    let engine = match engine_or_closed(name, snapshot) {
        Ok(e) => e,
        Err(closed) => return closed,
    };
    // Stacks: a manager also lists them from services (even with 0 replicas running) and from
    // the tasks of removed services still stopping on any node; every node sees the task
    // containers placed on it.
    let manager = engine.swarm == SwarmRole::Manager || snapshot.swarm_source.asked();
    match live_names(snapshot, manager) {
        Ok(live) => verdict(cfg, &live, manager),
        Err(closed) => closed,
    }
}

/// Every live stack and compose project the snapshot shows, or the gate closed because a
/// listing it needs could not be read.
fn live_names(snapshot: &Snapshot, manager: bool) -> Result<BTreeSet<LiveName>, GateResult> {
    let closed = |what: &str, e| unreadable(GateName::LiveRuns, what, e);
    let containers = snapshot
        .containers
        .as_ref()
        .map_err(|e| closed("containers", e))?;
    let mut live: BTreeMap<(Kind, String), BTreeSet<&'static str>> = BTreeMap::new();
    let mut add = |kind, name: &str, seen_on| {
        live.entry((kind, name.to_string()))
            .or_default()
            .insert(seen_on);
    };
    if manager {
        let services = snapshot
            .services
            .as_ref()
            .map_err(|e| closed("swarm services", e))?;
        let tasks = snapshot
            .tasks
            .as_ref()
            .map_err(|e| closed("swarm tasks", e))?;
        for s in services {
            let labels = s.spec.as_ref().and_then(|sp| sp.labels.as_ref());
            if let Some(stack) = label(labels, STACK_LABEL) {
                add(Kind::Stack, stack, "services");
            }
        }
        for t in tasks.iter().filter(|t| is_being_removed(t)) {
            let labels = t
                .spec
                .as_ref()
                .and_then(|sp| sp.container_spec.as_ref())
                .and_then(|c| c.labels.as_ref());
            if let Some(stack) = label(labels, STACK_LABEL) {
                add(Kind::Stack, stack, "tasks");
            }
        }
    }
    for c in containers.iter().filter(|c| is_live(c)) {
        let labels = c.labels.as_ref();
        if let Some(project) = label(labels, COMPOSE_LABEL) {
            add(Kind::ComposeProject, project, "containers");
        }
        if let Some(stack) = label(labels, STACK_LABEL) {
            add(Kind::Stack, stack, "containers");
        }
    }
    Ok(live
        .into_iter()
        .map(|((kind, name), seen_on)| LiveName {
            kind,
            name,
            seen_on,
        })
        .collect())
}

/// Closed when any live name matches the pattern, naming the first.
fn verdict(cfg: &LiveRunsGate, live: &BTreeSet<LiveName>, manager: bool) -> GateResult {
    let name = GateName::LiveRuns;
    let matched: Vec<&LiveName> = live
        .iter()
        .filter(|l| cfg.regex.is_match(&l.name))
        .collect();
    let evidence = json!({
        "pattern": cfg.pattern,
        "stacks_from": if manager {
            vec!["services", "tasks", "containers"]
        } else {
            vec!["containers"]
        },
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
    fn a_stack_being_torn_down_is_live_until_its_containers_stop() {
        // `docker service rm ci-7_web` with a 60 s stop grace period: the service is gone, its
        // task is desired `remove` and still running, and so is its container.
        let snap = fixtures::load("swarm_stack_teardown");
        assert!(snap.services.as_ref().unwrap().is_empty());
        let g = eval("^ci-", &snap);
        assert!(!g.open);
        assert!(g.reason.contains("live stack \"ci-7\""), "{}", g.reason);
        assert_eq!(
            g.evidence["live"][0]["seen_on"],
            json!(["containers", "tasks"])
        );
        // On a manager the task alone says so (its container may run on another node)…
        let mut other_node = snap.clone();
        other_node.containers = Ok(Vec::new());
        let g = eval("^ci-", &other_node);
        assert!(!g.open && g.reason.contains("\"ci-7\""), "{}", g.reason);
        // …and the container alone too.
        let mut container_only = snap.clone();
        container_only.tasks = Ok(Vec::new());
        assert!(!eval("^ci-", &container_only).open);
        // Once the container has stopped the stack is gone.
        let mut stopped = snap;
        stopped.tasks = Ok(Vec::new());
        for c in stopped.containers.as_mut().unwrap() {
            c.state = Some(ContainerSummaryStateEnum::EXITED);
        }
        assert!(eval("^ci-", &stopped).open);
    }

    #[test]
    fn only_created_containers_do_not_make_a_project_live() {
        let mut snap = fixtures::load("standalone_compose");
        for c in snap.containers.as_mut().unwrap() {
            if c.state == Some(ContainerSummaryStateEnum::RUNNING) {
                c.state = Some(ContainerSummaryStateEnum::CREATED);
            }
        }
        assert!(eval("^build-", &snap).open);
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
