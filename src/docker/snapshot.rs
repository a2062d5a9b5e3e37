//! One consistent read of everything the gates need, taken with a fixed number of requests
//! (three to six, concurrent where they can be) however many services, tasks or containers the
//! host has, each filtered on the daemon to what the gates look at.

use super::containers::Listing;
use super::Daemon;
use crate::engine::{Engine, SwarmRole};
use crate::model::{Read, ReadError, COMPOSE_LABEL, STACK_LABEL};
use bollard::models::{ContainerSummary, Service, SystemInfo, Task};
use bollard::query_parameters::{ListServicesOptionsBuilder, ListTasksOptionsBuilder};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What the daemon said, read by read. A failed read is kept (not propagated) so that each gate
/// depending on it closes with the error as its reason while the others still report.
///
/// Deserialised through [`Reads`] so that a snapshot captured from a real daemon (the gates'
/// test fixtures) gets its [`Engine`] computed exactly as a live one does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "Reads")]
pub struct Snapshot {
    pub info: Read<SystemInfo>,
    /// The engine `info` describes, computed once here for every gate and step that asks.
    pub engine: Read<Engine>,
    /// Containers in any state (`all=true`) that carry a compose-project or stack label: the
    /// only ones the gates look at. Filtered on the daemon, so a host with thousands of plain
    /// containers costs what its labelled ones cost.
    pub containers: Read<Vec<ContainerSummary>>,
    /// Services with `status=true`, so running/desired task counts come in the same request.
    pub services: Read<Vec<Service>>,
    /// Tasks whose desired state is `running` or `ready` (the ones that should be up) or
    /// `remove` (those of a removed service or of a scale-down, still stopping).
    pub tasks: Read<Vec<Task>>,
    /// Every retained task, in any state, of the replicated services `services` shows running
    /// fewer tasks than desired ([`short_services`]); empty, without a request, when there are
    /// none. Only a slot's history tells a service that finished for good (its last task
    /// complete, or failed with its restart policy used up) from one whose tasks are still to
    /// be created.
    pub history: Read<Vec<Task>>,
    /// Whose view of the swarm `services`, `tasks` and `history` are.
    pub swarm_source: SwarmSource,
}

/// Where the swarm reads came from: a swarm's state is known to its managers only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "from", content = "address")]
pub enum SwarmSource {
    /// Not read: not in a swarm, or a worker without `swarm.managers`.
    #[default]
    NotRead,
    /// This node is a manager: its own socket.
    ThisNode,
    /// This node is a worker; the first of `swarm.managers` that answered as a manager of its
    /// swarm.
    Manager(String),
    /// This node is a worker and no manager answered: the reads hold why.
    NoManager,
}

impl SwarmSource {
    /// Whether the reads are meant to be a manager's view (read, or failed to be).
    pub fn asked(&self) -> bool {
        *self != SwarmSource::NotRead
    }

    /// The manager that answered a worker, for the evidence.
    pub fn manager(&self) -> Option<&str> {
        match self {
            SwarmSource::Manager(a) => Some(a),
            _ => None,
        }
    }
}

/// Services, live tasks and the history of short services, as read on a manager.
type SwarmReads = (Read<Vec<Service>>, Read<Vec<Task>>, Read<Vec<Task>>);

/// The reads themselves, as the daemon answered them.
#[derive(Deserialize)]
struct Reads {
    info: Read<SystemInfo>,
    containers: Read<Vec<ContainerSummary>>,
    services: Read<Vec<Service>>,
    tasks: Read<Vec<Task>>,
    /// Absent from snapshots captured before it was read: no service was short there.
    #[serde(default = "no_history")]
    history: Read<Vec<Task>>,
    /// Absent from snapshots captured before workers asked managers: a manager's own reads
    /// when the node is one.
    #[serde(default)]
    swarm_source: Option<SwarmSource>,
}

fn no_history() -> Read<Vec<Task>> {
    Ok(Vec::new())
}

impl From<Reads> for Snapshot {
    fn from(r: Reads) -> Snapshot {
        let engine = r.info.as_ref().map(Engine::from_info).map_err(Clone::clone);
        let swarm_source = r.swarm_source.unwrap_or(match &engine {
            Ok(e) if e.swarm == SwarmRole::Manager => SwarmSource::ThisNode,
            _ => SwarmSource::NotRead,
        });
        Snapshot {
            engine,
            info: r.info,
            containers: r.containers,
            services: r.services,
            tasks: r.tasks,
            history: r.history,
            swarm_source,
        }
    }
}

/// Desired states of the tasks read: `running`, and `ready` for a task the orchestrator has
/// prepared but not yet started (mid-update, waiting out a restart delay); `remove` for a task
/// whose service was removed (`docker stack rm`) and whose container may still be stopping —
/// swarm deletes those tasks once they have stopped. Filtering on the daemon keeps the answer
/// to live tasks, not each slot's history.
const TASK_DESIRED_STATES: &[&str] = &["running", "ready", "remove"];

/// The replicated services whose status shows fewer running tasks than desired: the ones whose
/// task history [`Snapshot::history`] reads. Global services and jobs are judged without it.
pub fn short_services(services: &[Service]) -> Vec<&Service> {
    services
        .iter()
        .filter(|s| {
            let replicated = s
                .spec
                .as_ref()
                .and_then(|sp| sp.mode.as_ref())
                .is_some_and(|m| m.replicated.is_some());
            let st = s.service_status.as_ref();
            let running = st.and_then(|st| st.running_tasks).unwrap_or(0);
            let desired = st.and_then(|st| st.desired_tasks).unwrap_or(0);
            replicated && running < desired
        })
        .collect()
}

impl Snapshot {
    /// Reads the daemon: `/info` and the two labelled container listings at once; then, only on
    /// a swarm manager, services and tasks at once (asking any other node for them is answered
    /// 503 and leaves an error line in the daemon's log on every run); then the task history
    /// only when a replicated service is short of its desired tasks ([`Snapshot::history`]).
    /// Three requests off-swarm, five on a manager, six at most.
    pub async fn take(daemon: &Daemon) -> Snapshot {
        let d = &daemon.read;
        // Label filters are ANDed by the daemon: one request per label, run concurrently.
        let labelled = |label| Listing {
            all: true,
            size: false,
            label: Some(label),
        };
        // The swarm reads wait for `/info` (they depend on the role); the container listings
        // run alongside both.
        let info_then_swarm = async {
            let info = d.info().await.map_err(|e| daemon.read_err(e));
            let swarm = Self::swarm_if_manager(daemon, &info).await;
            (info, swarm)
        };
        let ((info, ((services, tasks, history), source)), compose, stacks) = tokio::join!(
            info_then_swarm,
            daemon.containers(labelled(COMPOSE_LABEL)),
            daemon.containers(labelled(STACK_LABEL)),
        );
        Snapshot::from(Reads {
            info,
            containers: merge(compose, stacks),
            services,
            tasks,
            history,
            swarm_source: Some(source),
        })
    }

    /// On a swarm manager, [`Snapshot::swarm`] on its own socket; on a worker with
    /// `swarm.managers`, the same asked of the first manager that answers; on any other node
    /// (or without its info) the swarm reads are not made, and say why.
    async fn swarm_if_manager(
        daemon: &Daemon,
        info: &Read<SystemInfo>,
    ) -> (SwarmReads, SwarmSource) {
        let not_read = |why: String| {
            let skipped = ReadError::local(format!("not read: {why}"));
            (
                (Err(skipped.clone()), Err(skipped), no_history()),
                SwarmSource::NotRead,
            )
        };
        match info.as_ref().map(|i| Engine::from_info(i).swarm) {
            Ok(SwarmRole::Manager) => (Self::swarm(daemon).await, SwarmSource::ThisNode),
            Ok(SwarmRole::Worker) if !daemon.managers.is_empty() => {
                Self::from_managers(daemon, info.as_ref().ok()).await
            }
            Ok(SwarmRole::NotInSwarm) => not_read("this node is not in a swarm".into()),
            Ok(SwarmRole::Worker) => not_read(
                "this node is a swarm worker and swarm.managers is not set (only a manager \
                 can list services and tasks)"
                    .into(),
            ),
            Ok(SwarmRole::Unavailable(state)) => {
                not_read(format!("this node's swarm state is {state:?}"))
            }
            Err(_) => not_read("the daemon's info could not be read".into()),
        }
    }

    /// A worker's swarm reads: `swarm.managers` in order, the first that answers `/info` as a
    /// manager of this worker's swarm (its node id among the worker's `RemoteManagers`) is
    /// asked what [`Snapshot::swarm`] asks a local manager. None answering: every swarm read
    /// fails with each manager's reason, and the gates needing them close.
    async fn from_managers(
        daemon: &Daemon,
        worker: Option<&SystemInfo>,
    ) -> (SwarmReads, SwarmSource) {
        let known: Vec<&str> = worker
            .and_then(|i| i.swarm.as_ref()?.remote_managers.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|m| m.node_id.as_deref())
            .collect();
        let mut failures = Vec::new();
        for manager in &daemon.managers {
            let m = match manager {
                Ok(m) => m,
                Err(e) => {
                    failures.push(e.clone());
                    continue;
                }
            };
            let address = m.address.as_str().to_string();
            let info = match m.read.info().await {
                Ok(i) => i,
                Err(e) => {
                    failures.push(format!("{address}: {}", m.read_err(e)));
                    continue;
                }
            };
            let node = info.swarm.as_ref().and_then(|s| s.node_id.as_deref());
            match Engine::from_info(&info).swarm {
                SwarmRole::Manager if node.is_some_and(|n| known.contains(&n)) => {
                    return (Self::swarm(m).await, SwarmSource::Manager(address));
                }
                SwarmRole::Manager => failures.push(format!(
                    "{address}: a manager of another swarm (node {} is not among this \
                     worker's managers)",
                    node.unwrap_or("?")
                )),
                role => failures.push(format!("{address}: not a swarm manager ({role:?})")),
            }
        }
        let none = ReadError::local(format!(
            "no swarm manager answered: {}",
            failures.join("; ")
        ));
        (
            (Err(none.clone()), Err(none.clone()), Err(none)),
            SwarmSource::NoManager,
        )
    }

    /// A manager's services (with their status) and live tasks, then the history of short ones.
    async fn swarm(daemon: &Daemon) -> SwarmReads {
        let d = &daemon.read;
        let services_opts = ListServicesOptionsBuilder::default().status(true).build();
        let task_filters: HashMap<&str, Vec<&str>> =
            HashMap::from([("desired-state", TASK_DESIRED_STATES.to_vec())]);
        let tasks_opts = ListTasksOptionsBuilder::default()
            .filters(&task_filters)
            .build();
        let (services, tasks) = tokio::join!(
            d.list_services(Some(services_opts)),
            d.list_tasks(Some(tasks_opts)),
        );
        let services = services.map_err(|e| daemon.read_err(e));
        let short: Vec<&str> = match &services {
            Ok(all) => short_services(all)
                .into_iter()
                .filter_map(|s| s.id.as_deref())
                .collect(),
            Err(_) => Vec::new(),
        };
        let history = if short.is_empty() {
            no_history()
        } else {
            Self::history(daemon, &short).await
        };
        (services, tasks.map_err(|e| daemon.read_err(e)), history)
    }

    /// All retained tasks of `services` (the `service` filter's values are ORed): one request.
    async fn history(daemon: &Daemon, services: &[&str]) -> Read<Vec<Task>> {
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([("service", services.to_vec())]);
        let opts = ListTasksOptionsBuilder::default().filters(&filters).build();
        daemon
            .read
            .list_tasks(Some(opts))
            .await
            .map_err(|e| daemon.read_err(e))
    }
}

/// One list of the containers carrying either label (a container with both appears once).
fn merge<E>(
    a: Result<Vec<ContainerSummary>, E>,
    b: Result<Vec<ContainerSummary>, E>,
) -> Result<Vec<ContainerSummary>, E> {
    let mut all = a?;
    let seen: std::collections::HashSet<Option<String>> =
        all.iter().map(|c| c.id.clone()).collect();
    all.extend(b?.into_iter().filter(|c| !seen.contains(&c.id)));
    Ok(all)
}
