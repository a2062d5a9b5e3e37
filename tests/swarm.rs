//! Gates that read swarm state, against a private single-node swarm. Swarm daemons share the
//! gossip port, so these tests take `SWARM_LOCK` and run one at a time.

mod common;
use common::*;

fn swarm() -> (std::sync::MutexGuard<'static, ()>, PrivateDaemon) {
    let guard = SWARM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let d = PrivateDaemon::start();
    d.swarm_init();
    d.build("pg-base:1", "", "base");
    d.dangling("pg-junk:1");
    d.exited("exited1", "pg-base:1");
    (guard, d)
}

fn service_state(d: &PrivateDaemon, name: &str) -> String {
    d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
        name,
    ])
}

#[test]
fn live_stack_closes_run_and_reclaim_and_its_removal_opens_them() {
    let (_g, d) = swarm();
    d.service(
        "ci-1234_web",
        &[
            "--label",
            "com.docker.stack.namespace=ci-1234",
            "--replicas",
            "0",
        ],
        "pg-base:1",
    );
    settle();
    for command in ["run", "reclaim"] {
        let report = d.expect_closed(OPEN_NOW, command, "live_runs", "ci-1234");
        assert_eq!(
            gate(&report, "live_runs")["evidence"]["stacks_from"],
            serde_json::json!(["services", "tasks", "containers"])
        );
        assert_eq!(
            gate(&report, "converging")["open"],
            true,
            "a 0-replica service has converged"
        );
    }
    d.docker(&["service", "rm", "ci-1234_web"]);
    let r = d.prunegate(OPEN_NOW, &["run", "--json"]);
    r.expect(0);
    assert_eq!(r.json()["outcome"], "pruned");
}

#[test]
fn service_that_cannot_converge_closes_the_gate() {
    let (_g, d) = swarm();
    d.stuck_service("stuck", "pg-base:1");
    settle();
    for command in ["run", "reclaim"] {
        // reclaim skips only the disk gate: still closed.
        d.expect_closed(OPEN_NOW, command, "converging", "\"stuck\"");
    }
    // The operator is told: with the disk over the threshold, runs kept from pruning by the
    // gate set the blocked-since metric (the alert rule fires on it after 6 h) and keep it.
    let prom = d.dir.path().join("prunegate.prom");
    let sinks = format!(
        "{OPEN_NOW}[metrics]\npath = \"{}\"\n[state]\ndir = \"{}\"\n",
        prom.display(),
        d.dir.path().join("state").display()
    );
    let sample = |name: &str| -> f64 {
        let text = std::fs::read_to_string(&prom).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
            .parse()
            .unwrap()
    };
    d.expect_closed(&sinks, "run", "converging", "\"stuck\"");
    let since = sample("prunegate_blocked_since_timestamp_seconds");
    assert!(since > 0.0, "blocked_since {since}");
    assert_eq!(sample("prunegate_gate_open{gate=\"converging\"}"), 0.0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    d.expect_closed(&sinks, "run", "converging", "\"stuck\"");
    assert_eq!(sample("prunegate_blocked_since_timestamp_seconds"), since);
}

#[test]
fn update_in_progress_closes_the_gate() {
    let (_g, d) = swarm();
    d.service("web", &["--replicas", "2"], "pg-base:1");
    d.wait_for("web to run 2 tasks", || {
        d.docker(&[
            "service",
            "ls",
            "--filter",
            "name=web",
            "--format",
            "{{.Replicas}}",
        ]) == "2/2"
    });
    // Running settled service: the gate is open.
    let r = d.prunegate(OPEN_NOW, &["check", "--json"]);
    assert_eq!(gate(&r.json(), "converging")["open"], true, "{}", r.stdout);
    d.docker(&[
        "service",
        "update",
        "-d",
        "--update-delay",
        "1h",
        "--update-parallelism",
        "1",
        "--env-add",
        "X=1",
        "web",
    ]);
    d.wait_for("the update to start", || {
        service_state(&d, "web") == "updating"
    });
    settle();
    let report = d.expect_closed(OPEN_NOW, "run", "converging", "\"web\"");
    let findings = gate(&report, "converging")["evidence"]["not_converged"].to_string();
    assert!(findings.contains("update state is updating"), "{findings}");
}

/// Finding 1 of the swarm issue: a service whose only task finished for good kept the gate
/// closed ("runs 0 of 1 desired tasks") and the host never pruned again.
#[test]
fn services_finished_for_good_do_not_keep_the_host_from_pruning() {
    let (_g, d) = swarm();
    // `migrate` completes once; `flaky` fails each time and may be restarted once.
    let create = |name: &str, restart: &[&str], command: &[&str]| {
        let mut args = vec!["service", "create", "-d", "--name", name];
        args.extend_from_slice(restart);
        args.extend_from_slice(&["--no-resolve-image", "pg-base:1", "/bin/busybox"]);
        args.extend_from_slice(command);
        d.docker(&args);
    };
    create("migrate", &["--restart-condition", "none"], &["true"]);
    create(
        "flaky",
        &[
            "--restart-condition",
            "on-failure",
            "--restart-max-attempts",
            "1",
            "--restart-delay",
            "1s",
        ],
        &["sh", "-c", "exit 3"],
    );
    d.wait_for("both services to finish", || {
        let states = d.docker(&[
            "service",
            "ps",
            "--format",
            "{{.DesiredState}}",
            "migrate",
            "flaky",
        ]);
        !states.is_empty() && states.lines().all(|l| l == "Shutdown")
    });
    settle();
    let r = d.prunegate(OPEN_NOW, &["run", "--json"]);
    let report = r.json();
    let converging = gate(&report, "converging");
    assert_eq!(converging["open"], true, "{}", r.stdout);
    let finished = converging["evidence"]["finished"].to_string();
    assert!(
        finished.contains("restart condition none, last task complete"),
        "{finished}"
    );
    assert!(
        finished.contains("restart condition on-failure, max attempts 1, last task failed"),
        "{finished}"
    );
    r.expect(0);
    assert_eq!(report["outcome"], "pruned", "{}", r.stdout);
}

/// Finding 2: during `docker stack rm` the task containers run through their stop grace period;
/// a manager that read stacks from services only saw the stack as gone.
#[test]
fn a_stack_being_torn_down_keeps_the_gate_closed_until_its_containers_stop() {
    let (_g, d) = swarm();
    d.service(
        "ci-7_web",
        &[
            "--label",
            "com.docker.stack.namespace=ci-7",
            "--container-label",
            "com.docker.stack.namespace=ci-7",
            // busybox sleep as PID 1 ignores SIGTERM: the container runs out the grace period.
            "--stop-grace-period",
            "120s",
        ],
        "pg-base:1",
    );
    d.wait_for("ci-7_web to run", || {
        d.docker(&[
            "ps",
            "-q",
            "--filter",
            "label=com.docker.stack.namespace=ci-7",
        ])
        .lines()
        .count()
            == 1
    });
    d.docker(&["service", "rm", "ci-7_web"]);
    settle();
    let report = d.expect_closed(OPEN_NOW, "run", "live_runs", "\"ci-7\"");
    assert_eq!(
        gate(&report, "live_runs")["evidence"]["live"][0]["seen_on"],
        serde_json::json!(["containers", "tasks"]),
    );
    // Its container stopped (here: killed), the stack is gone and the run prunes.
    let id = d.docker(&[
        "ps",
        "-q",
        "--filter",
        "label=com.docker.stack.namespace=ci-7",
    ]);
    d.docker(&["rm", "-f", &id]);
    d.wait_for("swarm to drop the removed task", || {
        d.api("/tasks").as_array().is_some_and(|t| t.is_empty())
    });
    let r = d.prunegate(OPEN_NOW, &["run", "--json"]);
    r.expect(0);
    assert_eq!(r.json()["outcome"], "pruned", "{}", r.stdout);
}

#[test]
fn a_swarm_worker_is_closed_and_says_why() {
    let (_g, manager) = swarm();
    let worker = PrivateDaemon::start();
    let token = manager.docker(&["swarm", "join-token", "-q", "worker"]);
    let addr = manager.docker(&[
        "info",
        "--format",
        "{{range .Swarm.RemoteManagers}}{{.Addr}}{{end}}",
    ]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    worker.swarm_join(&token, "127.0.0.1", &format!("127.0.0.1:{port}"), &addr);
    worker.build("pg-base:1", "", "base");
    worker.exited("exited1", "pg-base:1");
    settle();
    let report = worker.expect_closed(OPEN_NOW, "run", "converging", "swarm worker");
    // Services cannot be listed on a worker: stacks are read from its containers instead.
    assert_eq!(
        gate(&report, "live_runs")["evidence"]["stacks_from"],
        serde_json::json!(["containers"])
    );
    assert_eq!(gate(&report, "live_runs")["open"], true);
    // The manager sees the same swarm as settled.
    let r = manager.prunegate(OPEN_NOW, &["check", "--json"]);
    assert_eq!(gate(&r.json(), "converging")["open"], true, "{}", r.stdout);
    let _ = worker.docker_output(&["swarm", "leave", "--force"]);
}
