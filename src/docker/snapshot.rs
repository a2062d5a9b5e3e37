//! One consistent read of everything the gates need, taken with a fixed number of concurrent
//! requests however many services, tasks or containers the host has, each filtered on the
//! daemon to what the gates look at.

use super::{Daemon, Read, ReadError};
use crate::disk::{self, DiskReading};
use crate::gates::live_runs::{COMPOSE_LABEL, STACK_LABEL};
use bollard::models::{ContainerSummary, Service, SystemInfo, Task};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListServicesOptionsBuilder, ListTasksOptionsBuilder,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

/// What the daemon said, read by read. A failed read is kept (not propagated) so that each gate
/// depending on it closes with the error as its reason while the others still report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub info: Read<SystemInfo>,
    /// Containers in any state (`all=true`) that carry a compose-project or stack label: the
    /// only ones the gates look at. Filtered on the daemon, so a host with thousands of plain
    /// containers costs what its labelled ones cost.
    pub containers: Read<Vec<ContainerSummary>>,
    /// Services with `status=true`, so running/desired task counts come in the same request.
    pub services: Read<Vec<Service>>,
    /// Tasks whose desired state is `running` or `ready` (the ones that should be up).
    pub tasks: Read<Vec<Task>>,
}

/// Desired states of tasks that are meant to come up: `running`, and `ready` for a task the
/// orchestrator has prepared but not yet started (mid-update, or retrying an image pull).
/// Filtering on the daemon keeps the answer to live tasks, not each slot's history.
const TASK_DESIRED_STATES: &[&str] = &["running", "ready"];

impl Snapshot {
    /// Reads the daemon: five requests, all in flight at once.
    pub async fn take(daemon: &Daemon) -> Snapshot {
        let d = &daemon.read;
        // Label filters are ANDed by the daemon: one request per label, run concurrently.
        let labelled = |label: &str| {
            let filters: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![label])]);
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build()
        };
        let services_opts = ListServicesOptionsBuilder::default().status(true).build();
        let task_filters: HashMap<&str, Vec<&str>> =
            HashMap::from([("desired-state", TASK_DESIRED_STATES.to_vec())]);
        let tasks_opts = ListTasksOptionsBuilder::default()
            .filters(&task_filters)
            .build();
        let (info, compose, stacks, services, tasks) = tokio::join!(
            d.info(),
            d.list_containers(Some(labelled(COMPOSE_LABEL))),
            d.list_containers(Some(labelled(STACK_LABEL))),
            d.list_services(Some(services_opts)),
            d.list_tasks(Some(tasks_opts)),
        );
        Snapshot {
            info: info.map_err(|e| daemon.read_err(e)),
            containers: merge(compose, stacks).map_err(|e| daemon.read_err(e)),
            services: services.map_err(|e| daemon.read_err(e)),
            tasks: tasks.map_err(|e| daemon.read_err(e)),
        }
    }

    /// The daemon's data root, where images, containers and build cache live.
    pub fn docker_root_dir(&self) -> Result<PathBuf, ReadError> {
        match &self.info {
            Ok(info) => info
                .docker_root_dir
                .as_ref()
                .map(PathBuf::from)
                .ok_or_else(|| ReadError {
                    status: None,
                    message: "the daemon's info has no DockerRootDir".into(),
                }),
            Err(e) => Err(e.clone()),
        }
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

/// Where the disk reading's path came from, so the report can say which key changes it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DiskPathSource {
    Config,
    DockerRootDir,
}

/// Reads the filesystem the disk gate watches: the configured path, else the daemon's data root.
/// `None` only when there is no path to read (no config path and no daemon info).
pub fn read_disk(
    configured: Option<&PathBuf>,
    snapshot: &Snapshot,
) -> Result<DiskReading, ReadError> {
    let (path, source) = match configured {
        Some(p) => (p.clone(), DiskPathSource::Config),
        None => (snapshot.docker_root_dir()?, DiskPathSource::DockerRootDir),
    };
    Ok(disk::read(path, source))
}
