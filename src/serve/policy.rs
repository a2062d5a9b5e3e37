//! What `prunegate serve-swarm` lets a worker ask, and what of the answer it passes on: pure.
//!
//! A worker needs a manager's view of the swarm for two gates (`live_runs`, `converging`) and
//! the images step (which image a service's spec pins). That is five read-only requests of the
//! Engine API. Everything else is refused, and every answer is rebuilt from an allowlist of
//! fields: a service's spec carries its environment (passwords, tokens), its secrets' and
//! configs' names, mounts and command lines; `/info` carries proxy URLs with credentials and
//! registry mirrors. A worker's key — held by the node most likely to run hostile code — reads
//! only names, labels, images, states and counts.

use serde_json::{Map, Value};

/// A request a worker may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ping,
    Version,
    Info,
    Services,
    Tasks,
}

/// A request refused: the status and the message the worker gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

/// The query parameters each route passes on; any other is refused (not dropped: a request
/// that meant something else must not get an answer to another question).
fn allowed_query(route: Route) -> &'static [&'static str] {
    match route {
        Route::Services => &["status", "filters"],
        Route::Tasks => &["filters"],
        Route::Ping | Route::Version | Route::Info => &[],
    }
}

/// Routes `method` `path_and_query` (an optional `/v1.NN` prefix allowed, as clients send it)
/// and returns the path and query to ask the manager's daemon, version prefix removed.
pub fn route(method: &str, path_and_query: &str) -> Result<(Route, String), Refusal> {
    let refuse = |status: u16, message: String| Err(Refusal { status, message });
    if method != "GET" && method != "HEAD" {
        return refuse(
            405,
            format!("{method} refused: prunegate serve-swarm answers reads of the swarm only"),
        );
    }
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let path = strip_version(path);
    let route = match path {
        "/_ping" => Route::Ping,
        "/version" => Route::Version,
        "/info" => Route::Info,
        "/services" => Route::Services,
        "/tasks" => Route::Tasks,
        other => {
            return refuse(
                403,
                format!(
                    "{other:?} refused: prunegate serve-swarm answers /_ping, /version, /info, \
                     /services and /tasks only"
                ),
            )
        }
    };
    let mut upstream = path.to_string();
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        for (key, _) in form_urlencoded::parse(q.as_bytes()) {
            if !allowed_query(route).contains(&key.as_ref()) {
                return refuse(403, format!("query parameter {key:?} refused on {path}"));
            }
        }
        // Re-encoded from what was parsed: nothing but the allowed pairs reaches the daemon.
        let pairs: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form_urlencoded::parse(q.as_bytes()))
            .finish();
        upstream.push('?');
        upstream.push_str(&pairs);
    }
    Ok((route, upstream))
}

/// `/v1.41/info` → `/info`; anything else as it is.
fn strip_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let Some(slash) = rest.find('/') else {
        return path;
    };
    let version = &rest[..slash];
    let numeric = version.split('.').count() == 2
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        &rest[slash..]
    } else {
        path
    }
}

/// Keeps only `keys` of an object (anything else becomes `null`).
fn keep(value: &Value, keys: &[&str]) -> Value {
    let Some(object) = value.as_object() else {
        return Value::Null;
    };
    let kept: Map<String, Value> = keys
        .iter()
        .filter_map(|k| object.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    Value::Object(kept)
}

/// Applies `f` to `value[key]` when it is there.
fn within(value: &mut Value, key: &str, f: impl Fn(&Value) -> Value) {
    if let Some(inner) = value.get(key) {
        let rebuilt = f(inner);
        value[key] = rebuilt;
    }
}

/// A service or task spec's container part: its image and labels, nothing else (no env, args,
/// command, secrets, configs, mounts, user, hostname).
fn container_spec(spec: &Value) -> Value {
    keep(spec, &["Image", "Labels"])
}

fn task_template(template: &Value) -> Value {
    let mut t = keep(
        template,
        &["ContainerSpec", "RestartPolicy", "ForceUpdate", "Runtime"],
    );
    within(&mut t, "ContainerSpec", container_spec);
    t
}

fn service_spec(spec: &Value) -> Value {
    let mut s = keep(
        spec,
        &[
            "Name",
            "Labels",
            "TaskTemplate",
            "Mode",
            "UpdateConfig",
            "RollbackConfig",
        ],
    );
    within(&mut s, "TaskTemplate", task_template);
    s
}

fn service(s: &Value) -> Value {
    let mut out = keep(
        s,
        &[
            "ID",
            "Version",
            "CreatedAt",
            "UpdatedAt",
            "Spec",
            "PreviousSpec",
            "UpdateStatus",
            "ServiceStatus",
            "JobStatus",
        ],
    );
    within(&mut out, "Spec", service_spec);
    within(&mut out, "PreviousSpec", service_spec);
    out
}

fn task(t: &Value) -> Value {
    let mut out = keep(
        t,
        &[
            "ID",
            "Version",
            "CreatedAt",
            "UpdatedAt",
            "Labels",
            "Spec",
            "ServiceID",
            "Slot",
            "NodeID",
            "Status",
            "DesiredState",
            "JobIteration",
        ],
    );
    within(&mut out, "Spec", task_template);
    within(&mut out, "Status", |s| {
        let mut st = keep(
            s,
            &[
                "Timestamp",
                "State",
                "Message",
                "Err",
                "ContainerStatus",
                "PortStatus",
            ],
        );
        within(&mut st, "ContainerStatus", |c| {
            keep(c, &["ContainerID", "PID", "ExitCode"])
        });
        within(&mut st, "PortStatus", |_| Value::Null);
        st
    });
    out
}

fn info(i: &Value) -> Value {
    let mut out = keep(
        i,
        &[
            "ID",
            "Name",
            "ServerVersion",
            "OperatingSystem",
            "OSType",
            "Architecture",
            "KernelVersion",
            "Driver",
            "DriverStatus",
            "Swarm",
        ],
    );
    within(&mut out, "Swarm", |s| {
        let mut sw = keep(
            s,
            &[
                "NodeID",
                "NodeAddr",
                "LocalNodeState",
                "ControlAvailable",
                "Error",
                "RemoteManagers",
                "Nodes",
                "Managers",
                "Cluster",
            ],
        );
        // The cluster's id only: its spec holds the CA and join configuration.
        within(&mut sw, "Cluster", |c| keep(c, &["ID"]));
        sw
    });
    out
}

fn version(v: &Value) -> Value {
    keep(
        v,
        &[
            "Version",
            "ApiVersion",
            "MinAPIVersion",
            "Os",
            "Arch",
            "Platform",
        ],
    )
}

/// The part of the daemon's answer to `route` that a worker gets.
pub fn redact(route: Route, answer: &Value) -> Value {
    let each = |f: fn(&Value) -> Value| match answer.as_array() {
        Some(list) => Value::Array(list.iter().map(f).collect()),
        None => Value::Array(Vec::new()),
    };
    match route {
        Route::Ping => answer.clone(),
        Route::Version => version(answer),
        Route::Info => info(answer),
        Route::Services => each(service),
        Route::Tasks => each(task),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_five_reads_are_routed() {
        assert_eq!(
            route("GET", "/info").unwrap(),
            (Route::Info, "/info".into())
        );
        assert_eq!(
            route("GET", "/v1.41/services?status=true").unwrap(),
            (Route::Services, "/services?status=true".into())
        );
        let (r, up) = route(
            "GET",
            "/tasks?filters=%7B%22desired-state%22%3A%5B%22running%22%5D%7D",
        )
        .unwrap();
        assert_eq!(r, Route::Tasks);
        assert!(up.starts_with("/tasks?filters="), "{up}");
        for (method, path, status) in [
            ("POST", "/containers/create", 405),
            ("DELETE", "/images/x", 405),
            ("GET", "/containers/json", 403),
            ("GET", "/secrets", 403),
            ("GET", "/services/abc", 403),
            ("GET", "/v1.41/../containers/json", 403),
            ("GET", "/services/../secrets", 403),
            ("GET", "/vx.y/info", 403),
            ("GET", "/info?x=1", 403),
            ("GET", "/services?insertDefaults=true", 403),
        ] {
            let r = route(method, path).unwrap_err();
            assert_eq!(r.status, status, "{method} {path}: {r:?}");
        }
    }

    #[test]
    fn a_services_environment_secrets_and_command_never_leave_the_manager() {
        let spec = json!({
            "Name": "web", "Labels": {"com.docker.stack.namespace": "ci-1"},
            "TaskTemplate": {"ContainerSpec": {
                "Image": "app:1@sha256:aa", "Labels": {"x": "y"},
                "Env": ["DB_PASSWORD=hunter2"], "Args": ["--token", "s3cret"],
                "Command": ["sh"], "Secrets": [{"SecretName": "db"}],
                "Configs": [{"ConfigName": "c"}], "Mounts": [{"Source": "/etc"}],
                "User": "root", "Hostname": "h"},
                "RestartPolicy": {"Condition": "any"}, "Networks": [{"Target": "n"}]},
            "Mode": {"Replicated": {"Replicas": 2}},
            "EndpointSpec": {"Ports": [{"PublishedPort": 80}]}
        });
        let answer = json!([{
            "ID": "s1", "Version": {"Index": 9}, "Spec": spec, "PreviousSpec": spec,
            "UpdateStatus": {"State": "updating"},
            "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 2},
            "Endpoint": {"VirtualIPs": []}
        }]);
        let out = redact(Route::Services, &answer);
        let text = out.to_string();
        for secret in [
            "hunter2",
            "s3cret",
            "SecretName",
            "ConfigName",
            "/etc",
            "Networks",
            "Ports",
        ] {
            assert!(!text.contains(secret), "{secret} left the manager: {text}");
        }
        let s = &out[0];
        assert_eq!(
            s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"],
            "app:1@sha256:aa"
        );
        assert_eq!(
            s["PreviousSpec"]["Labels"]["com.docker.stack.namespace"],
            "ci-1"
        );
        assert_eq!(s["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
        assert_eq!(s["ServiceStatus"]["DesiredTasks"], 2);
        assert_eq!(s["UpdateStatus"]["State"], "updating");
        // Still a service bollard decodes.
        let typed: Vec<bollard::models::Service> = serde_json::from_value(out).unwrap();
        assert_eq!(typed[0].id.as_deref(), Some("s1"));
    }

    #[test]
    fn tasks_and_info_keep_the_gates_fields_only() {
        let tasks = json!([{
            "ID": "t1", "ServiceID": "s1", "NodeID": "n1", "Slot": 1, "DesiredState": "running",
            "Spec": {"ContainerSpec": {"Image": "app:1", "Env": ["K=secret"]}},
            "Status": {"State": "running", "Timestamp": "2026-01-01T00:00:00Z",
                       "ContainerStatus": {"ContainerID": "c", "ExitCode": 0}},
            "NetworksAttachments": [{"Addresses": ["10.0.0.5/24"]}]
        }]);
        let out = redact(Route::Tasks, &tasks);
        assert!(!out.to_string().contains("secret") && !out.to_string().contains("10.0.0.5"));
        assert_eq!(out[0]["Status"]["State"], "running");
        let typed: Vec<bollard::models::Task> = serde_json::from_value(out).unwrap();
        assert_eq!(typed[0].slot, Some(1));
        let info = json!({
            "ID": "d", "ServerVersion": "20.10.24", "HttpProxy": "http://user:pw@proxy",
            "RegistryConfig": {"Mirrors": ["m"]}, "Labels": ["secret=1"],
            "Swarm": {"NodeID": "n1", "ControlAvailable": true, "LocalNodeState": "active",
                      "Cluster": {"ID": "c1", "Spec": {"CAConfig": {"SigningCAKey": "KEY"}}}}
        });
        let out = redact(Route::Info, &info);
        let text = out.to_string();
        assert!(!text.contains("pw@") && !text.contains("KEY") && !text.contains("Mirrors"));
        assert_eq!(out["Swarm"]["ControlAvailable"], true);
        assert_eq!(out["Swarm"]["Cluster"]["ID"], "c1");
        let typed: bollard::models::SystemInfo = serde_json::from_value(out).unwrap();
        assert_eq!(typed.server_version.as_deref(), Some("20.10.24"));
    }
}
