//! The converging gate: closed while swarm is still bringing services to their desired state.
//!
//! A deploy that is updating, rolling back or pulling has tasks whose images and containers are
//! in flux: a rollback needs the previous image, a retrying task the one it is pulling. Pruning
//! then turns a slow deploy into a failed one. Read only from a manager; a worker cannot see
//! services and so cannot say that nothing is converging.

use super::{engine_or_closed, GateName, GateResult};
use crate::docker::snapshot::Snapshot;
use crate::engine::SwarmRole;
use crate::settings::ConvergingGate;
use bollard::models::{Service, ServiceUpdateStatusStateEnum as Upd, Task, TaskState};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotConverged {
    pub service: String,
    pub why: String,
}

pub fn evaluate(cfg: &ConvergingGate, snapshot: &Snapshot) -> GateResult {
    let name = GateName::Converging;
    if !cfg.enabled {
        return GateResult::disabled(name);
    }
    let engine = match engine_or_closed(name, snapshot) {
        Ok(e) => e,
        Err(closed) => return closed,
    };
    if let Some(not_a_manager) = role_verdict(&engine.swarm) {
        return not_a_manager;
    }
    let (services, tasks) = match (&snapshot.services, &snapshot.tasks) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) => {
            return GateResult::closed(
                name,
                format!("cannot list swarm services: {e}"),
                json!({ "error": e }),
            )
        }
        (_, Err(e)) => {
            return GateResult::closed(
                name,
                format!("cannot list swarm tasks: {e}"),
                json!({ "error": e }),
            )
        }
    };
    let names: HashMap<&str, &str> = services
        .iter()
        .filter_map(|s| Some((s.id.as_deref()?, service_name(s))))
        .collect();
    let mut found: Vec<NotConverged> = services.iter().flat_map(service_findings).collect();
    found.extend(tasks.iter().filter_map(|t| task_finding(t, &names)));
    verdict(services.len(), tasks.len(), &found)
}

/// The gate's answer on a node that is not a manager (`None` on a manager: read on).
fn role_verdict(role: &SwarmRole) -> Option<GateResult> {
    let name = GateName::Converging;
    match role {
        SwarmRole::NotInSwarm => Some(GateResult::open(
            name,
            "not in a swarm: no services to converge",
            json!({ "swarm": "inactive" }),
        )),
        SwarmRole::Worker => Some(GateResult::closed(
            name,
            "this node is a swarm worker: only a manager can see whether services are converging \
             (run prunegate against a manager, or set gates.converging.enabled = false if deploys never target this node)",
            json!({ "swarm": "worker" }),
        )),
        SwarmRole::Unavailable(state) => Some(GateResult::closed(
            name,
            format!("swarm node state is {state:?}: services cannot be read"),
            json!({ "swarm": state }),
        )),
        SwarmRole::Manager => None,
    }
}

fn service_name(s: &Service) -> &str {
    s.spec
        .as_ref()
        .and_then(|sp| sp.name.as_deref())
        .or(s.id.as_deref())
        .unwrap_or("?")
}

/// A service converging by its own record: an update or rollback in flight, or a replicated
/// service short of its desired tasks.
fn service_findings(s: &Service) -> Vec<NotConverged> {
    let sname = service_name(s);
    let mut found = Vec::new();
    if let Some(state) = s.update_status.as_ref().and_then(|u| u.state) {
        if matches!(
            state,
            Upd::UPDATING | Upd::PAUSED | Upd::ROLLBACK_STARTED | Upd::ROLLBACK_PAUSED
        ) {
            found.push(NotConverged {
                service: sname.to_string(),
                why: format!("update state is {state}"),
            });
        }
    }
    let replicated = s
        .spec
        .as_ref()
        .and_then(|sp| sp.mode.as_ref())
        .is_some_and(|m| m.replicated.is_some());
    if let (true, Some(st)) = (replicated, s.service_status.as_ref()) {
        let (running, desired) = (st.running_tasks.unwrap_or(0), st.desired_tasks.unwrap_or(0));
        if running < desired {
            found.push(NotConverged {
                service: sname.to_string(),
                why: format!("runs {running} of {desired} desired tasks"),
            });
        }
    }
    found
}

/// A task the orchestrator wants up (desired running or ready) that is not running yet.
fn task_finding(t: &Task, names: &HashMap<&str, &str>) -> Option<NotConverged> {
    if !matches!(
        t.desired_state,
        Some(TaskState::RUNNING) | Some(TaskState::READY)
    ) {
        return None;
    }
    let state = t.status.as_ref().and_then(|s| s.state);
    if state == Some(TaskState::RUNNING) {
        return None;
    }
    let service = t
        .service_id
        .as_deref()
        .map(|id| names.get(id).copied().unwrap_or(id))
        .unwrap_or("?");
    let message = t
        .status
        .as_ref()
        .and_then(|s| s.err.as_deref().or(s.message.as_deref()))
        .unwrap_or("");
    Some(NotConverged {
        service: service.to_string(),
        why: format!(
            "task {} is {} (desired {}){}",
            t.id.as_deref().map(short_id).unwrap_or("?"),
            state.map_or("unknown".to_string(), |s| s.to_string()),
            t.desired_state.map_or("?".to_string(), |s| s.to_string()),
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ),
    })
}

/// Open when nothing is converging; closed naming the first finding.
fn verdict(services: usize, tasks: usize, found: &[NotConverged]) -> GateResult {
    let name = GateName::Converging;
    let evidence = json!({
        "swarm": "manager",
        "services": services,
        "tasks_desired_up": tasks,
        "not_converged": found,
    });
    match found.first() {
        None => GateResult::open(name, format!("all {services} services converged"), evidence),
        Some(first) => GateResult::closed(
            name,
            format!(
                "service {:?} {}{}",
                first.service,
                first.why,
                if found.len() > 1 {
                    format!(" (and {} more findings)", found.len() - 1)
                } else {
                    String::new()
                }
            ),
            evidence,
        ),
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::fixtures;

    fn eval(snap: &Snapshot) -> GateResult {
        evaluate(&ConvergingGate { enabled: true }, snap)
    }

    #[test]
    fn standalone_daemon_is_open() {
        let g = eval(&fixtures::load("standalone_idle"));
        assert!(g.open);
        assert!(g.reason.contains("not in a swarm"));
    }

    #[test]
    fn settled_swarm_is_open() {
        let g = eval(&fixtures::load("swarm_live_stack"));
        assert!(g.open, "{}", g.reason);
    }

    #[test]
    fn unsatisfiable_constraint_closes_it() {
        let g = eval(&fixtures::load("swarm_pending"));
        assert!(!g.open);
        assert!(g.reason.contains("\"stuck\""), "{}", g.reason);
    }

    #[test]
    fn update_in_progress_closes_it() {
        let g = eval(&fixtures::load("swarm_updating"));
        assert!(!g.open);
        assert!(
            g.reason.contains("update state is updating"),
            "{}",
            g.reason
        );
    }

    #[test]
    fn worker_is_closed_and_says_why() {
        let snap = fixtures::load("swarm_worker");
        assert!(snap.services.is_err(), "a worker cannot list services");
        let g = eval(&snap);
        assert!(!g.open && g.reason.contains("worker"), "{}", g.reason);
    }
}
