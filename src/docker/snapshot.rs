//! One consistent read of everything the gates need, taken with a fixed number of concurrent
//! requests however many services, tasks or containers the host has.

use super::{Daemon, Read, ReadError};
use crate::disk::{self, DiskReading};
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
    /// Every container, in any state (`all=true`).
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
    /// Reads the daemon: four requests, all in flight at once.
    pub async fn take(daemon: &Daemon) -> Snapshot {
        let d = &daemon.read;
        let containers_opts = ListContainersOptionsBuilder::default().all(true).build();
        let services_opts = ListServicesOptionsBuilder::default().status(true).build();
        let task_filters: HashMap<&str, Vec<&str>> =
            HashMap::from([("desired-state", TASK_DESIRED_STATES.to_vec())]);
        let tasks_opts = ListTasksOptionsBuilder::default()
            .filters(&task_filters)
            .build();
        let (info, containers, services, tasks) = tokio::join!(
            d.info(),
            d.list_containers(Some(containers_opts)),
            d.list_services(Some(services_opts)),
            d.list_tasks(Some(tasks_opts)),
        );
        Snapshot {
            info: info.map_err(|e| daemon.read_err(e)),
            containers: containers.map_err(|e| daemon.read_err(e)),
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
