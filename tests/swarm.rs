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
            "services"
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
    worker.docker(&[
        "swarm",
        "join",
        "--token",
        &token,
        "--advertise-addr",
        "127.0.0.1",
        "--listen-addr",
        &format!("127.0.0.1:{port}"),
        &addr,
    ]);
    worker.build("pg-base:1", "", "base");
    worker.exited("exited1", "pg-base:1");
    settle();
    let report = worker.expect_closed(OPEN_NOW, "run", "converging", "swarm worker");
    // Services cannot be listed on a worker: stacks are read from its containers instead.
    assert_eq!(
        gate(&report, "live_runs")["evidence"]["stacks_from"],
        "containers"
    );
    assert_eq!(gate(&report, "live_runs")["open"], true);
    // The manager sees the same swarm as settled.
    let r = manager.prunegate(OPEN_NOW, &["check", "--json"]);
    assert_eq!(gate(&r.json(), "converging")["open"], true, "{}", r.stdout);
    let _ = worker.docker_output(&["swarm", "leave", "--force"]);
}
