//! Operating prunegate on a real private dockerd: metrics (checked by promtool), the audit log,
//! the run lock, the grace gate, `prunegate daemon`, JSON logs and the advisory.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn promtool_check(path: &std::path::Path) {
    assert!(
        std::path::Path::new("/usr/bin/promtool").exists(),
        "/usr/bin/promtool is missing: apt-get install prometheus (scripts/setup does it)"
    );
    let out = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(path).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}\n--- file:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap()
    );
}

/// The value of the sample `name{labels}` (labels as written, e.g. `class="images"`).
fn metric(path: &std::path::Path, sample: &str) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
        .parse()
        .unwrap()
}

fn world(d: &PrivateDaemon) -> (String, String) {
    d.build("pg-base:1", "", "base");
    d.build("pg-cache:1", "", "tagged, unused");
    let junk = d.dangling("pg-junk:1");
    let exited = d.exited("exited1", "pg-base:1");
    d.run_detached("keeper", "pg-base:1", &[]);
    d.docker(&["volume", "create", "kept-data"]);
    settle();
    (junk, exited)
}

#[test]
fn metrics_after_pruned_skipped_and_failed_runs_pass_promtool() {
    let d = PrivateDaemon::start();
    let (_junk, _exited) = world(&d);
    let prom = d.dir.path().join("prunegate.prom");
    let state = d.dir.path().join("state");
    let sinks = format!(
        "[metrics]\npath = \"{}\"\n[state]\ndir = \"{}\"\n",
        prom.display(),
        state.display()
    );

    let r = d.prunegate(&format!("{OPEN_NOW}{sinks}"), &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    promtool_check(&prom);
    assert_eq!(
        metric(&prom, "prunegate_last_run_outcome{outcome=\"pruned\"}"),
        1.0
    );
    assert_eq!(metric(&prom, "prunegate_gate_open{gate=\"disk\"}"), 1.0);
    let containers = report["steps"][0]["count"].as_f64().unwrap();
    assert_eq!(
        metric(
            &prom,
            "prunegate_last_run_removed_objects{class=\"containers\"}"
        ),
        containers
    );
    assert_eq!(
        metric(
            &prom,
            "prunegate_removed_objects_total{class=\"containers\"}"
        ),
        containers
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("\nprunegate_disk_used_percent{path=\""),
        "{text}"
    );
    assert!(
        text.contains("\nprunegate_gate_open{gate=\"grace\"} 1"),
        "{text}"
    );
    assert_eq!(
        metric(&prom, "prunegate_last_run_api_calls"),
        report["api_calls"].as_f64().unwrap()
    );

    // Closed: the disk gate at 100% never opens.
    let closed = format!("[gates.disk]\nused_percent = 100\ninodes_used_percent = 100\n{sinks}");
    d.prunegate(&closed, &["run"]).expect(10);
    promtool_check(&prom);
    assert_eq!(
        metric(&prom, "prunegate_last_run_outcome{outcome=\"skipped\"}"),
        1.0
    );
    assert_eq!(metric(&prom, "prunegate_gate_open{gate=\"disk\"}"), 0.0);
    assert_eq!(
        metric(
            &prom,
            "prunegate_last_run_removed_objects{class=\"containers\"}"
        ),
        0.0
    );
    assert_eq!(
        metric(
            &prom,
            "prunegate_removed_objects_total{class=\"containers\"}"
        ),
        containers,
        "totals persist"
    );
    assert_eq!(
        metric(&prom, "prunegate_runs_total{outcome=\"pruned\"}"),
        1.0
    );
    assert_eq!(
        metric(&prom, "prunegate_runs_total{outcome=\"skipped\"}"),
        1.0
    );

    // Failed: no daemon at that address.
    let gone = format!("unix://{}/gone.sock", d.dir.path().display());
    let cmd = d
        .prunegate_cmd_at(&gone, &format!("{OPEN_NOW}{sinks}"), &["run"])
        .output();
    let r = Run::from(cmd.unwrap());
    r.expect(1);
    promtool_check(&prom);
    assert_eq!(
        metric(&prom, "prunegate_last_run_outcome{outcome=\"error\"}"),
        1.0
    );
    assert_eq!(
        metric(&prom, "prunegate_runs_total{outcome=\"error\"}"),
        1.0
    );
}

#[test]
fn audit_lines_match_what_the_daemon_reported_removed() {
    let d = PrivateDaemon::start();
    let (junk, exited) = world(&d);
    let audit = d.dir.path().join("audit.jsonl");
    let config = format!("{OPEN_NOW}[audit]\npath = \"{}\"\n", audit.display());
    let r = d.prunegate(&config, &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each audit line is JSON"))
        .collect();
    let mut logged: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["class"].as_str().unwrap().to_string(),
                l["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut reported: Vec<(String, String)> = Vec::new();
    for class in ["containers", "images", "build_cache"] {
        for id in items(&report, class) {
            reported.push((class.to_string(), id));
        }
    }
    logged.sort();
    reported.sort();
    assert_eq!(logged, reported, "one audit line per removed object");
    assert!(logged.contains(&("images".into(), junk.clone())));
    for l in &lines {
        assert_eq!(l["run_id"], report["run_id"]);
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
    }
    let c = lines.iter().find(|l| l["id"] == exited.as_str()).unwrap();
    assert_eq!(c["what"]["name"], "exited1");
    // The image as the engine lists the container's: Podman qualifies short names.
    let image = match engine().kind {
        Kind::Podman => "docker.io/library/pg-base:1",
        Kind::Docker => "pg-base:1",
    };
    assert_eq!(c["what"]["image"], image);
    assert_eq!(c["what"]["state"], "exited");
    let cache = lines.iter().find(|l| l["class"] == "build_cache");
    if engine().has_build_cache() {
        let cache = cache.expect("build cache audited");
        assert!(cache["what"]["description"].is_string(), "{cache}");
    } else {
        assert_eq!(cache, None, "an engine without build cache");
    }
    // Appended, never rewritten: a second run that removes something adds lines.
    d.exited("exited2", "pg-base:1");
    settle();
    d.prunegate(&config, &["run"]).expect(0);
    let after = std::fs::read_to_string(&audit).unwrap().lines().count();
    assert_eq!(after, lines.len() + 1);
}

#[test]
fn a_shared_lock_held_by_a_deploy_keeps_prunegate_out() {
    let d = PrivateDaemon::start();
    world(&d);
    let lock = d.lock_path();
    std::fs::write(&lock, "").unwrap();
    // -o: only flock itself holds the lock, so killing it releases the lock.
    let mut deploy = Command::new("flock")
        .args(["-s", "-o"])
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock(1) from util-linux");
    std::thread::sleep(Duration::from_millis(300));
    let before = d.inventory();
    let r = d.prunegate(OPEN_NOW, &["run", "--json"]);
    deploy.kill().unwrap();
    let _ = deploy.wait();
    r.expect(10);
    let report = r.json();
    let g = gate(&report, "lock");
    assert_eq!(g["open"], false);
    let reason = g["reason"].as_str().unwrap();
    assert!(reason.contains(&lock.display().to_string()), "{reason}");
    assert!(reason.contains("shared by pid"), "{reason}");
    assert_eq!(
        d.inventory(),
        before,
        "nothing removed while the lock is held"
    );
    // Released: the run goes ahead.
    d.prunegate(OPEN_NOW, &["run"]).expect(0);
}

#[test]
fn of_two_concurrent_runs_exactly_one_prunes() {
    let d = PrivateDaemon::start();
    d.build("pg-base:1", "", "base");
    let create = r#"{"Image":"pg-base:1","HostConfig":{"NetworkMode":"none"}}"#;
    for _ in 0..300 {
        d.api_post("/containers/create", create);
    }
    settle();
    let spawn = || {
        d.prunegate_cmd(OPEN_NOW, &["run", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let runs = [
        Run::from(a.wait_with_output().unwrap()),
        Run::from(b.wait_with_output().unwrap()),
    ];
    let outcomes: Vec<String> = runs
        .iter()
        .map(|r| r.json()["outcome"].as_str().unwrap().to_string())
        .collect();
    let pruned = outcomes.iter().filter(|o| *o == "pruned").count();
    assert_eq!(
        pruned, 1,
        "{outcomes:?}\n{}\n{}",
        runs[0].stdout, runs[1].stdout
    );
    let other = runs
        .iter()
        .find(|r| r.json()["outcome"] != "pruned")
        .unwrap();
    other.expect(10);
    assert_eq!(gate(&other.json(), "lock")["open"], false);
    assert_eq!(d.api("/containers/json?all=1").as_array().unwrap().len(), 0);
}

/// Without the run lock (another tool's prune, or a second host sharing the daemon), two prunes
/// of one kind meet the daemon's 409: that step is skipped, saying so, and the run goes on.
#[test]
fn a_prune_already_running_on_the_daemon_skips_that_step() {
    let d = PrivateDaemon::start();
    let junk = d.slow_prune_world(1000);
    let first = d.spawn_run_until_container_prune(OPEN_NOW);
    let no_lock = format!("{OPEN_NOW}[lock]\nenabled = false\n");
    let second = d.prunegate(&no_lock, &["run", "--json"]);
    let first = Run::from(first.wait_with_output().unwrap());
    if engine().kind == Kind::Podman {
        // Podman 4.3 has no prune lock: the two prunes race, and either (or both) fails on the
        // containers the other removed — 500, one "no such container" per container — with an
        // answer that no longer says what it removed itself. Such a step fails, the run stops
        // there, and the reason stays readable; a later run finishes the job.
        for r in [&first, &second] {
            assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
            let report = r.json();
            if r.code == 1 {
                assert_eq!(report["steps"][0]["status"], "failed", "{report}");
                let reason = report["steps"][0]["reason"].as_str().unwrap();
                assert!(
                    reason.contains("no such container") && reason.len() < 800,
                    "{reason}"
                );
                assert_eq!(report["steps"][1]["status"], "skipped", "the run stopped");
            } else {
                r.expect(0);
            }
        }
        d.prunegate(OPEN_NOW, &["run"]).expect(0);
        assert_eq!(d.container_count(), 0);
        assert!(!d.inventory().images.contains(&junk));
        return;
    }
    for r in [&first, &second] {
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        r.expect(0);
    }
    let report = second.json();
    assert_eq!(report["steps"][0]["status"], "skipped", "{report}");
    let reason = report["steps"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("already running"), "{reason}");
    assert_eq!(report["steps"][1]["status"], "done", "the run went on");
    assert_eq!(first.json()["steps"][0]["count"], 1000);
    assert!(!d.inventory().images.contains(&junk));
}

#[test]
fn grace_gate_closes_with_a_long_period_and_opens_with_a_short_one() {
    let d = PrivateDaemon::start();
    world(&d);
    let long = format!("{OPEN_NOW}[gates.grace]\nmin_uptime = \"100000h\"\n");
    let report = d.expect_closed(&long, "run", "grace", "gates.grace.min_uptime");
    // The private daemon was started seconds ago, and its age is known through SO_PEERCRED.
    let daemon_age = gate(&report, "grace")["evidence"]["daemon_uptime_seconds"].as_u64();
    assert!(
        daemon_age.is_some_and(|s| s < 600),
        "{}",
        gate(&report, "grace")
    );
    let short = format!("{OPEN_NOW}[gates.grace]\nmin_uptime = \"1s\"\n");
    std::thread::sleep(Duration::from_millis(1100));
    let r = d.prunegate(&short, &["run", "--json"]);
    r.expect(0);
    assert_eq!(gate(&r.json(), "grace")["open"], true);
}

#[test]
fn json_logs_parse_and_carry_one_summary_line() {
    let d = PrivateDaemon::start();
    world(&d);
    let r = d.prunegate(OPEN_NOW, &["run", "--log-format", "json"]);
    r.expect(0);
    let lines: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect();
    let summaries: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["outcome"].is_string()).collect();
    assert_eq!(summaries.len(), 1, "{}", r.stderr);
    let s = summaries[0];
    assert_eq!(s["outcome"], "pruned");
    assert!(s["gates"].as_str().unwrap().contains("disk=open"), "{s}");
    assert!(
        s["reclaimed_bytes"].is_u64() && s["run_id"].is_string(),
        "{s}"
    );
    // Text logs carry no colour codes when stderr is not a terminal.
    let r = d.prunegate(OPEN_NOW, &["check"]);
    assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
}

#[test]
fn advisory_says_what_the_policy_kept_when_the_disk_stays_full() {
    let mut d = PrivateDaemon::start();
    world(&d);
    let full = d.small_fs(8, 92);
    let config = format!(
        "[gates.disk]\npath = \"{}\"\n[prune]\nolder_than = \"0s\"\n",
        full.display()
    );
    let r = d.prunegate(&config, &["run", "--json"]);
    r.expect(0);
    let report = r.json();
    let a = &report["advisory"];
    assert!(
        a.is_object(),
        "the disk is still full after the pass: {}",
        r.stdout
    );
    assert!(a["disk_used_percent_after"].as_u64().unwrap() >= 80);
    assert!(
        a["unused_tagged_images"].as_u64().unwrap() >= 1,
        "pg-cache:1 is tagged and unused: {a}"
    );
    assert!(
        a["unused_volumes"].as_u64().unwrap() >= 1,
        "kept-data is unused: {a}"
    );
    assert!(
        d.inventory().volumes.contains(&"kept-data".to_string()),
        "the advisory removes nothing"
    );
}

/// Waits until `path` has at least `n` lines, or panics after 60 s.
fn wait_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} lines in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn daemon_runs_on_schedule_reloads_on_sighup_and_stops_on_sigterm() {
    let d = PrivateDaemon::start();
    world(&d);
    let config_path = d.dir.path().join("daemon.toml");
    let lock = d.lock_path();
    let base = format!(
        "[gates.grace]\nmin_uptime = \"0s\"\n[lock]\npath = \"{}\"\n[schedule]\ncron = \"* * * * * *\"\n",
        lock.display()
    );
    std::fs::write(
        &config_path,
        format!("{base}[prune]\nolder_than = \"48h\"\n"),
    )
    .unwrap();
    let out_path = d.dir.path().join("daemon.out");
    let err_path = d.dir.path().join("daemon.err");
    let mut child = Command::new(env!("CARGO_BIN_EXE_prunegate"))
        .args(["daemon", "--json", "--config"])
        .arg(&config_path)
        .arg("--docker-host")
        .arg(&d.host)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success())
    };
    let reports = wait_lines(&out_path, 2);
    for r in &reports {
        let r: serde_json::Value = serde_json::from_str(r).unwrap();
        assert_eq!(r["command"], "run");
        assert_eq!(r["older_than"], "48h");
    }
    // A broken config is rejected and the old one kept.
    std::fs::write(&config_path, "[prune]\nolder_than = \"forever\"\n").unwrap();
    signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&err_path)
        .unwrap()
        .contains("rejected")
    {
        assert!(
            Instant::now() < deadline,
            "no rejection logged:\n{}",
            std::fs::read_to_string(&err_path).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let n = std::fs::read_to_string(&out_path).unwrap().lines().count();
    let later = wait_lines(&out_path, n + 1);
    let last: serde_json::Value = serde_json::from_str(later.last().unwrap()).unwrap();
    assert_eq!(
        last["older_than"], "48h",
        "the old config is still in force"
    );
    assert!(std::fs::read_to_string(&err_path)
        .unwrap()
        .contains("prune.older_than"));
    // A good config is taken.
    std::fs::write(
        &config_path,
        format!("{base}[prune]\nolder_than = \"1h\"\n"),
    )
    .unwrap();
    signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&out_path).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        if last["older_than"] == "1h" {
            break;
        }
        assert!(Instant::now() < deadline, "the new config was not applied");
        std::thread::sleep(Duration::from_millis(200));
    }
    signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&err_path).unwrap()
    );
    assert!(std::fs::read_to_string(&err_path)
        .unwrap()
        .contains("next run"));
}

#[test]
fn daemon_survives_a_docker_daemon_that_is_down() {
    let d = PrivateDaemon::start();
    let config_path = d.dir.path().join("daemon.toml");
    let text = format!(
        "[lock]\npath = \"{}\"\n[schedule]\ncron = \"* * * * * *\"\n",
        d.lock_path().display()
    );
    std::fs::write(&config_path, text).unwrap();
    let out_path = d.dir.path().join("down.out");
    let gone = format!("unix://{}/gone.sock", d.dir.path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_prunegate"))
        .args(["daemon", "--json", "--config"])
        .arg(&config_path)
        .args(["--docker-host", &gone])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reports = wait_lines(&out_path, 2);
    for r in &reports {
        let r: serde_json::Value = serde_json::from_str(r).unwrap();
        assert_eq!(r["outcome"], "error");
        assert!(r["error"].as_str().unwrap().contains("gone.sock"), "{r}");
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after failed runs"
    );
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn sigterm_during_a_run_stops_after_the_current_step() {
    let d = PrivateDaemon::start();
    let junk = d.slow_prune_world(600);
    let child = d.spawn_run_until_container_prune(OPEN_NOW);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let run = Run::from(child.wait_with_output().unwrap());
    run.expect(1);
    let report = run.json();
    assert_eq!(report["outcome"], "interrupted");
    d.assert_stopped_after_containers(&report, 600, "interrupted", &junk);
}

/// A healthy host's daemon log gets no error line from prunegate: off-swarm it does not ask for
/// services and tasks (the daemon answers those 503 and logs an error each time).
#[test]
fn a_standalone_daemon_logs_no_error_for_prunegates_requests() {
    let d = PrivateDaemon::start();
    world(&d);
    let log = d.dir.path().join("dockerd.log");
    let before = std::fs::read_to_string(&log).unwrap().len();
    d.prunegate(OPEN_NOW, &["check", "--json"]).expect(0);
    let r = d.prunegate(OPEN_NOW, &["run", "--json"]);
    r.expect(0);
    assert_eq!(r.json()["outcome"], "pruned");
    assert_eq!(
        gate(&r.json(), "converging")["reason"],
        "not in a swarm: no services to converge"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let errors: Vec<&str> = text[before..]
        .lines()
        .filter(|l| l.contains("level=error"))
        .collect();
    assert!(
        errors.is_empty(),
        "the daemon logged:\n{}",
        errors.join("\n")
    );
}
