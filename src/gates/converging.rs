//! The converging gate: closed while swarm is still bringing services to their desired state.
//!
//! A deploy that is updating, rolling back or pulling has tasks whose images and containers are
//! in flux: a rollback needs the previous image, a retrying task the one it is pulling. Pruning
//! then turns a slow deploy into a failed one. Read only from a manager; a worker cannot see
//! services and so cannot say that nothing is converging.
//!
//! A service whose tasks have all finished for good (a migration job with restart condition
//! `none` that completed; `on-failure` with its attempts used up) is *not* converging: swarm
//! will schedule nothing more for it, and counting it would keep the host from pruning forever.
//! Its status still says "0 of 1 running", so that is told apart by the slot's history.
//!
//! What it decides about the cases that never settle on their own (see docs/gates.md, checked
//! on a real daemon): a paused update or rollback is converging — the service is half updated
//! and a rollback needs the previous image — until an operator resumes or rolls it back; a
//! crash-looping service is converging whenever a run sees its task waiting out the restart
//! delay (`ready`) and not in the moments its task runs. Both can keep a full disk unpruned;
//! the blocked-since metric and its alert say so.

use super::{engine_or_closed, unreadable, GateName, GateResult};
use crate::docker::snapshot::{short_services, Snapshot};
use crate::engine::SwarmRole;
use crate::settings::ConvergingGate;
use bollard::models::{Service, ServiceUpdateStatusStateEnum as Upd, Task, TaskState};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One service and what the gate found about it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Finding {
    pub service: String,
    pub why: String,
}

/// The gate, saying which manager's view it judged when a worker asked one.
pub fn evaluate(cfg: &ConvergingGate, snapshot: &Snapshot) -> GateResult {
    super::as_seen_by(judge(cfg, snapshot), snapshot)
}

fn judge(cfg: &ConvergingGate, snapshot: &Snapshot) -> GateResult {
    let name = GateName::Converging;
    if !cfg.enabled {
        return GateResult::disabled(name);
    }
    let engine = match engine_or_closed(name, snapshot) {
        Ok(e) => e,
        Err(closed) => return closed,
    };
    // A worker with `swarm.managers` judges a manager's reads (failed ones close the gate).
    if !snapshot.swarm_source.asked() {
        if let Some(not_a_manager) = role_verdict(&engine.swarm) {
            return not_a_manager;
        }
    }
    let closed = |what: &str, e| unreadable(name, what, e);
    let services = match &snapshot.services {
        Ok(s) => s,
        Err(e) => return closed("swarm services", e),
    };
    let tasks = match &snapshot.tasks {
        Ok(t) => t,
        Err(e) => return closed("swarm tasks", e),
    };
    let short = short_services(services);
    let history = match &snapshot.history {
        Ok(h) => h,
        Err(e) if !short.is_empty() => {
            return closed(
                "the task history of services short of their desired tasks",
                e,
            )
        }
        Err(_) => &Vec::new(),
    };
    let up: Vec<&Task> = tasks.iter().filter(|t| desired_up(t)).collect();
    let names: HashMap<&str, &str> = services
        .iter()
        .filter_map(|s| Some((s.id.as_deref()?, service_name(s))))
        .collect();
    let mut found: Vec<Finding> = services.iter().filter_map(update_finding).collect();
    found.extend(up.iter().filter_map(|t| task_finding(t, &names)));
    let mut finished = Vec::new();
    for s in short {
        match shortfall(s, &up, history) {
            Shortfall::Covered => {}
            Shortfall::Missing(f) => found.push(f),
            Shortfall::Finished(f) => finished.push(f),
        }
    }
    verdict(services.len(), up.len(), &found, &finished)
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
             (set swarm.managers so that this node asks one, or gates.converging.enabled = false if deploys never target this node)",
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

/// A task the orchestrator wants up: desired `running`, or `ready` (prepared, waiting to start).
fn desired_up(t: &Task) -> bool {
    matches!(
        t.desired_state,
        Some(TaskState::RUNNING) | Some(TaskState::READY)
    )
}

/// An update or rollback in flight, or paused: swarm (or the operator it waits for) still has
/// to finish it, and a rollback needs the previous image.
fn update_finding(s: &Service) -> Option<Finding> {
    let status = s.update_status.as_ref()?;
    let state = status.state?;
    if !matches!(
        state,
        Upd::UPDATING | Upd::PAUSED | Upd::ROLLBACK_STARTED | Upd::ROLLBACK_PAUSED
    ) {
        return None;
    }
    let message = status.message.as_deref().unwrap_or("");
    Some(Finding {
        service: service_name(s).to_string(),
        why: format!("update state is {state}{}", suffix(message)),
    })
}

/// A task the orchestrator wants up that is not running yet.
fn task_finding(t: &Task, names: &HashMap<&str, &str>) -> Option<Finding> {
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
    Some(Finding {
        service: service.to_string(),
        why: format!(
            "task {} is {} (desired {}){}",
            t.id.as_deref().map(short_id).unwrap_or("?"),
            state.map_or("unknown".to_string(), |s| s.to_string()),
            t.desired_state.map_or("?".to_string(), |s| s.to_string()),
            suffix(message)
        ),
    })
}

/// What the slots of a replicated service running fewer tasks than desired say.
enum Shortfall {
    /// Every missing task has a slot with a task wanted up: the task findings name them.
    Covered,
    /// Some slot has no task wanted up and has not finished: the orchestrator is still to
    /// create its task (a scale-up just made), so the service is converging.
    Missing(Finding),
    /// The missing tasks' slots have finished for good: swarm will start nothing more there.
    Finished(Finding),
}

/// Judges a short service by its slots. A slot is *up* when it has a task wanted up; it is
/// *finished* when it has none, and every task it retains has stopped for good with desired
/// state `shutdown` — swarm's restart supervisor shuts a task down and creates its replacement
/// in one transaction, so a slot with no replacement is one swarm decided not to restart.
fn shortfall(s: &Service, up: &[&Task], history: &[Task]) -> Shortfall {
    let id = s.id.as_deref();
    let st = s.service_status.as_ref();
    let running = st.and_then(|st| st.running_tasks).unwrap_or(0);
    let desired = st.and_then(|st| st.desired_tasks).unwrap_or(0);
    let up_slots: BTreeSet<i64> = up
        .iter()
        .filter(|t| t.service_id.as_deref() == id)
        .filter_map(|t| t.slot)
        .collect();
    let mut by_slot: BTreeMap<i64, Vec<&Task>> = BTreeMap::new();
    for t in history.iter().filter(|t| t.service_id.as_deref() == id) {
        if let Some(slot) = t.slot.filter(|slot| !up_slots.contains(slot)) {
            by_slot.entry(slot).or_default().push(t);
        }
    }
    let finished: Vec<&Task> = by_slot
        .values()
        .filter(|tasks| tasks.iter().all(|t| stopped_for_good(t)))
        .filter_map(|tasks| tasks.iter().copied().max_by_key(|t| created(t)))
        .collect();
    let covered = up_slots.len() as u64 + finished.len() as u64;
    let service = service_name(s).to_string();
    if covered < desired {
        return Shortfall::Missing(Finding {
            service,
            why: format!(
                "runs {running} of {desired} desired tasks, {} of them not created yet",
                desired - covered
            ),
        });
    }
    match finished.first() {
        None => Shortfall::Covered,
        Some(last) => Shortfall::Finished(Finding {
            service,
            why: finished_why(last, finished.len(), desired),
        }),
    }
}

/// Desired `shutdown` and stopped: complete, failed or rejected (a task being stopped, or
/// removed with its service, is still in flight).
fn stopped_for_good(t: &Task) -> bool {
    t.desired_state == Some(TaskState::SHUTDOWN)
        && matches!(
            t.status.as_ref().and_then(|s| s.state),
            Some(TaskState::COMPLETE) | Some(TaskState::FAILED) | Some(TaskState::REJECTED)
        )
}

fn created(t: &Task) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    t.created_at
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
}

/// `finished: restart condition none, last task complete`, from the last task's own spec.
fn finished_why(last: &Task, slots: usize, desired: u64) -> String {
    let policy = last.spec.as_ref().and_then(|s| s.restart_policy.as_ref());
    let condition = policy
        .and_then(|p| p.condition)
        .map_or("any".to_string(), |c| c.to_string());
    let attempts = match policy.and_then(|p| p.max_attempts).filter(|n| *n > 0) {
        Some(n) => format!(", max attempts {n}"),
        None => String::new(),
    };
    let status = last.status.as_ref();
    let state = status
        .and_then(|s| s.state)
        .map_or("unknown".to_string(), |s| s.to_string());
    let err = status.and_then(|s| s.err.as_deref()).unwrap_or("");
    let slots = if desired > 1 {
        format!(" ({slots} of {desired} slots)")
    } else {
        String::new()
    };
    format!(
        "finished: restart condition {condition}{attempts}, last task {state}{}{slots}",
        suffix(err)
    )
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// Open when nothing is converging (naming the services that finished); closed naming the
/// first finding.
fn verdict(services: usize, up: usize, found: &[Finding], finished: &[Finding]) -> GateResult {
    let name = GateName::Converging;
    let evidence = json!({
        "swarm": "manager",
        "services": services,
        "tasks_desired_up": up,
        "not_converged": found,
        "finished": finished,
    });
    let Some(first) = found.first() else {
        let finished_names = if finished.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = finished
                .iter()
                .map(|f| format!("{:?}", f.service))
                .collect();
            format!(
                " ({} finished for good: {})",
                finished.len(),
                names.join(", ")
            )
        };
        return GateResult::open(
            name,
            format!("all {services} services converged{finished_names}"),
            evidence,
        );
    };
    let more = if found.len() > 1 {
        format!(" (and {} more findings)", found.len() - 1)
    } else {
        String::new()
    };
    GateResult::closed(
        name,
        format!("service {:?} {}{more}", first.service, first.why),
        evidence,
    )
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
        assert!(
            g.reason.contains("is pending (desired running)"),
            "{}",
            g.reason
        );
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
    fn finished_services_do_not_close_it_and_are_named() {
        // once: restart none, completed; onfail: on-failure, 2 attempts used, failed; migrate:
        // 2 replicas, restart none, both completed. Their status says 0 of 1 (0 of 2) running.
        let g = eval(&fixtures::load("swarm_finished"));
        assert!(g.open, "{}", g.reason);
        assert!(g.reason.contains("3 finished for good"), "{}", g.reason);
        let why = |name: &str| {
            g.evidence["finished"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["service"] == name)
                .unwrap_or_else(|| panic!("{name} not in {}", g.evidence))["why"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            why("once"),
            "finished: restart condition none, last task complete"
        );
        assert_eq!(
            why("onfail"),
            "finished: restart condition on-failure, max attempts 2, last task failed: task: non-zero exit (3)"
        );
        assert!(
            why("migrate").contains("(2 of 2 slots)"),
            "{}",
            why("migrate")
        );
    }

    #[test]
    fn a_slot_with_no_task_yet_is_converging_beside_finished_ones() {
        // As if `migrate` had just been scaled from 2 to 3: the third slot has no task yet.
        let mut snap = fixtures::load("swarm_finished");
        for s in snap.services.as_mut().unwrap() {
            if service_name(s) == "migrate" {
                s.service_status.as_mut().unwrap().desired_tasks = Some(3);
            }
        }
        let g = eval(&snap);
        assert!(!g.open);
        assert!(
            g.reason
                .contains("\"migrate\" runs 0 of 3 desired tasks, 1 of them not created yet"),
            "{}",
            g.reason
        );
    }

    #[test]
    fn a_finished_slot_whose_task_is_still_stopping_is_not_finished() {
        let mut snap = fixtures::load("swarm_finished");
        let once = service_id(&snap, "once");
        for t in snap.history.as_mut().unwrap() {
            if t.service_id.as_deref() == Some(once.as_str()) {
                t.status.as_mut().unwrap().state = Some(TaskState::RUNNING);
            }
        }
        let g = eval(&snap);
        assert!(!g.open);
        assert!(g.reason.contains("\"once\" runs 0 of 1"), "{}", g.reason);
    }

    #[test]
    fn unreadable_history_of_a_short_service_closes_it() {
        let mut snap = fixtures::load("swarm_finished");
        snap.history = Err(crate::model::ReadError {
            status: Some(404),
            message: "service once not found".into(),
        });
        let g = eval(&snap);
        assert!(!g.open);
        assert!(
            g.reason.contains("cannot list the task history"),
            "{}",
            g.reason
        );
    }

    #[test]
    fn crash_loop_is_converging_while_its_task_waits_out_the_restart_delay() {
        // restart condition any, delay 3s, the task exits 1 after a second: swarm holds the
        // next task `ready` for the delay (closed), then runs it for a second (open).
        let g = eval(&fixtures::load("swarm_crash_loop_waiting"));
        assert!(!g.open);
        assert!(g.reason.contains("\"crashy\""), "{}", g.reason);
        assert!(
            g.reason.contains("is ready (desired ready)"),
            "{}",
            g.reason
        );
        let g = eval(&fixtures::load("swarm_crash_loop_running"));
        assert!(g.open, "{}", g.reason);
    }

    #[test]
    fn paused_update_is_converging_and_says_why_it_paused() {
        let g = eval(&fixtures::load("swarm_update_paused"));
        assert!(!g.open);
        assert!(
            g.reason
                .contains("\"web\" update state is paused: update paused due to failure"),
            "{}",
            g.reason
        );
    }

    fn service_id(snap: &Snapshot, name: &str) -> String {
        snap.services
            .as_ref()
            .unwrap()
            .iter()
            .find(|s| service_name(s) == name)
            .and_then(|s| s.id.clone())
            .unwrap()
    }

    #[test]
    fn worker_is_closed_and_says_why() {
        let snap = fixtures::load("swarm_worker");
        assert!(snap.services.is_err(), "a worker cannot list services");
        let g = eval(&snap);
        assert!(!g.open && g.reason.contains("worker"), "{}", g.reason);
        assert!(g.reason.contains("swarm.managers"), "{}", g.reason);
    }

    /// A worker that asked a manager judges the manager's reads, and says whose they were;
    /// one whose managers all failed is closed with their reasons.
    #[test]
    fn a_worker_judges_its_managers_view_or_fails_closed() {
        use crate::docker::snapshot::SwarmSource;
        let worker = fixtures::load("swarm_worker");
        let manager = fixtures::load("swarm_pending");
        let mut asked = worker.clone();
        asked.services = manager.services.clone();
        asked.tasks = manager.tasks.clone();
        asked.history = manager.history.clone();
        asked.swarm_source = SwarmSource::Manager("tcp://10.0.0.1:2376".into());
        let g = eval(&asked);
        assert!(!g.open, "{}", g.reason);
        assert!(
            g.reason.contains("as manager tcp://10.0.0.1:2376 sees it"),
            "{}",
            g.reason
        );
        assert_eq!(g.evidence["swarm_from"], "tcp://10.0.0.1:2376");
        let mut none = worker.clone();
        let e = crate::model::ReadError::local(
            "no swarm manager answered: tcp://10.0.0.1:2376: refused",
        );
        none.services = Err(e.clone());
        none.tasks = Err(e);
        none.swarm_source = SwarmSource::NoManager;
        let g = eval(&none);
        assert!(
            !g.open && g.reason.contains("no swarm manager answered"),
            "{}",
            g.reason
        );
    }
}
