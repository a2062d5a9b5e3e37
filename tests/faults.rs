//! Faults and hostile input: each has one expected behaviour — an error that says what
//! happened, a distinct exit code, nothing removed, no panic: a silent daemon, a missing disk
//! path, odd `DOCKER_HOST` values, a user without access to the socket, unusual names and
//! labels, a daemon killed mid-prune, a daemon without `/build/prune`, a daemon refusing a
//! filter. (The swarm worker is in swarm.rs; the lock and SIGTERM cases in operate.rs.)

mod common;
use common::*;
use std::os::unix::net::UnixListener;
use std::process::Command;

fn prunegate(args: &[&str]) -> Run {
    Run::from(
        Command::new(env!("CARGO_BIN_EXE_prunegate"))
            .args(args)
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap(),
    )
}

/// A socket in `dir` that accepts connections and holds them open without a byte of answer.
fn silent_daemon(dir: &std::path::Path) -> std::path::PathBuf {
    let sock = dir.join("silent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    sock
}

fn no_panic(r: &Run) {
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn a_daemon_that_accepts_and_never_answers_hits_the_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sock = silent_daemon(dir.path());
    let config = dir.path().join("c.toml");
    let lock = dir.path().join("lock");
    std::fs::write(
        &config,
        format!(
            "[docker]\nread_timeout = \"1s\"\n[lock]\npath = \"{}\"\n",
            lock.display()
        ),
    )
    .unwrap();
    for command in ["check", "run"] {
        let r = prunegate(&[
            command,
            "--json",
            "--config",
            config.to_str().unwrap(),
            "--docker-host",
            &format!("unix://{}", sock.display()),
        ]);
        no_panic(&r);
        r.expect(1);
        let report = r.json();
        assert_eq!(report["outcome"], "error");
        assert!(
            report["error"]
                .as_str()
                .unwrap()
                .contains("no answer within 1s"),
            "{report}"
        );
        assert!(
            report["steps"].as_array().unwrap().is_empty(),
            "nothing was pruned"
        );
    }
}

#[test]
fn a_missing_disk_path_closes_the_disk_gate_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for (path, says) in [
        ("/nonexistent/prunegate/data", "cannot stat"),
        (file.to_str().unwrap(), "not a directory"),
    ] {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, format!("[gates.disk]\npath = \"{path}\"\n")).unwrap();
        // No daemon at all: the closed disk gate is judged first, so this is a skip, not an error.
        let host = format!("unix://{}/absent.sock", dir.path().display());
        let r = prunegate(&[
            "run",
            "--json",
            "--config",
            config.to_str().unwrap(),
            "--docker-host",
            &host,
        ]);
        no_panic(&r);
        r.expect(10);
        let g = gate(&r.json(), "disk").clone();
        assert_eq!(g["open"], false);
        assert!(g["reason"].as_str().unwrap().contains(says), "{g}");
    }
}

#[test]
fn odd_docker_host_values_are_usage_errors_naming_the_source() {
    for value in [
        "",
        " ",
        "unix://",
        "tcp://:",
        "http//x",
        "unix:relative",
        "\u{1F433}://x",
        "tcp://a b",
        "\t",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_prunegate"))
            .args(["check", "--config", "/dev/null"])
            .env("DOCKER_HOST", value)
            .output()
            .unwrap();
        let r = Run::from(out);
        no_panic(&r);
        if value.is_empty() {
            // Empty means unset, as for the docker CLI: the default socket, absent here or not.
            assert!(matches!(r.code, 0 | 1 | 10), "{value:?}: {}", r.stderr);
            continue;
        }
        assert!(
            matches!(r.code, 1 | 2),
            "{value:?}: exit {} {}",
            r.code,
            r.stderr
        );
        if r.code == 2 {
            assert!(r.stderr.contains("DOCKER_HOST"), "{value:?}: {}", r.stderr);
        }
    }
}

#[test]
fn a_user_without_access_to_the_socket_gets_permission_denied() {
    let d = PrivateDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("[lock]\npath = \"{}/lock\"\n", dir.path().display()),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let before = d.inventory();
    for command in ["check", "run"] {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_prunegate"),
                command,
                "--json",
            ])
            .args([
                "--config",
                config.to_str().unwrap(),
                "--docker-host",
                &d.host,
            ])
            .env_remove("DOCKER_HOST")
            .output()
            .expect("setpriv from util-linux");
        let r = Run::from(out);
        no_panic(&r);
        r.expect(1);
        let text = r.json()["error"].as_str().unwrap().to_lowercase();
        assert!(text.contains("permission denied"), "{command}: {text}");
    }
    assert_eq!(d.inventory(), before);
}

#[test]
fn unusual_names_and_labels_do_not_break_matching_or_the_report() {
    let d = PrivateDaemon::start();
    d.build("pg-base:1", "", "base");
    let long = "x".repeat(300);
    let names = [
        "ci-ünïcödé-🐳".to_string(),
        "ci-(.*)+[meta]{1,2}|^$\\d".to_string(),
        format!("ci-{long}"),
        "ci \"quoted\" \\ back\nnewline".to_string(),
    ];
    for (i, name) in names.iter().enumerate() {
        let body = serde_json::json!({
            "Image": "pg-base:1",
            "Labels": { "com.docker.compose.project": name },
            "HostConfig": { "NetworkMode": "none" },
        });
        d.api_post(
            &format!("/containers/create?name=odd{i}"),
            &body.to_string(),
        );
        // Running: a project is live while a container of it runs (created ones do not count).
        d.docker(&["start", &format!("odd{i}")]);
    }
    // The pattern is matched against the names, never built from them.
    let report = d.expect_closed(OPEN_NOW, "run", "live_runs", "compose project");
    let live: Vec<String> = gate(&report, "live_runs")["evidence"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    for name in &names {
        assert!(
            live.contains(name),
            "{name:?} reported exactly, in {live:?}"
        );
    }
    let escaped = regex::escape(&names[1]);
    let only_meta = format!(
        "{OPEN_NOW}[gates.live_runs]\npattern = {}\n",
        toml::Value::String(format!("^{escaped}$"))
    );
    let report = d.expect_closed(&only_meta, "run", "live_runs", "ci-(.*)+");
    let matched = gate(&report, "live_runs")["evidence"]["matched"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        matched, 1,
        "only the name with metacharacters matches its escaped pattern"
    );
    // The text report renders them on one line per gate: a newline in a name is escaped.
    let text = d.prunegate(OPEN_NOW, &["check"]).stdout;
    let gate_lines = text.lines().filter(|l| l.starts_with("  gate ")).count();
    assert_eq!(gate_lines, 4, "{text}");
    assert!(text.contains("back\\nnewline"), "{text}");
}

#[test]
fn a_daemon_killed_during_a_prune_step_fails_it_and_the_next_run_completes() {
    let mut d = PrivateDaemon::start();
    let junk = d.slow_prune_world(600);
    let dir = d.dir.path().to_path_buf();
    let prom = dir.join("m.prom");
    let audit = dir.join("audit.jsonl");
    let config = format!(
        "{OPEN_NOW}[metrics]\npath = \"{}\"\n[state]\ndir = \"{}\"\n[audit]\npath = \"{}\"\n",
        prom.display(),
        dir.join("state").display(),
        audit.display()
    );
    let before = d.container_count();
    let child = d.spawn_run_until_container_prune(&config);
    d.kill_and_restart();
    let run = Run::from(child.wait_with_output().unwrap());
    no_panic(&run);
    run.expect(1);
    let report = run.json();
    assert_eq!(report["outcome"], "error");
    assert_eq!(report["steps"][0]["status"], "failed", "{report}");
    assert!(report["steps"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("containers prune failed"));
    for step in [1, 2] {
        assert_eq!(report["steps"][step]["status"], "skipped");
        assert!(report["steps"][step]["reason"]
            .as_str()
            .unwrap()
            .contains("earlier step failed"));
    }
    let metrics = std::fs::read_to_string(&prom).expect("metrics written after a failed run");
    assert!(
        metrics.contains("prunegate_last_run_outcome{outcome=\"error\"} 1"),
        "{metrics}"
    );
    assert!(
        d.inventory().images.contains(&junk),
        "no step ran after the failure"
    );
    let audit_text = std::fs::read_to_string(&audit).expect("audit written after a failed run");
    let failed: serde_json::Value = serde_json::from_str(audit_text.trim()).unwrap();
    assert_eq!(failed["class"], "containers", "{audit_text}");
    assert_eq!(failed["run_id"], report["run_id"]);
    assert!(failed["id"].is_null());
    assert!(
        failed["failed"]
            .as_str()
            .unwrap()
            .contains("containers prune failed"),
        "{failed}"
    );
    // The daemon is back: the next run goes through every step.
    let next = d.prunegate(&config, &["run", "--json"]);
    no_panic(&next);
    next.expect(0);
    let report = next.json();
    for step in 0..3 {
        // Podman keeps no build cache: its step is skipped before it is sent.
        let want = if step == 2 && !engine().has_build_cache() {
            "skipped"
        } else {
            "done"
        };
        assert_eq!(report["steps"][step]["status"], want, "{report}");
    }
    assert!(!d.inventory().images.contains(&junk), "the image step ran");
    assert!(d.container_count() < before);
}

/// A proxy on `listen` in front of the daemon at `upstream` that answers `refusal` (status and
/// JSON body) to requests whose path contains `refused` and passes everything else through, one
/// request per connection.
fn refusing_proxy(
    listen: &std::path::Path,
    upstream: std::path::PathBuf,
    refused: &'static str,
    refusal: (u16, &'static str),
) {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let listener = UnixListener::bind(listen).unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let mut client = client;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).map_or(true, |n| n == 0) {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                if path.contains(refused) {
                    let (status, body) = refusal;
                    let _ = write!(
                        client,
                        "HTTP/1.1 {status} Refused\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return;
                }
                let Ok(mut up) = UnixStream::connect(&upstream) else {
                    return;
                };
                // Ask the daemon to close after answering, so every request comes through here.
                let head = text.replacen("\r\n", "\r\nConnection: close\r\n", 1);
                if up.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let mut up_reader = up.try_clone().unwrap();
                let mut client_writer = client.try_clone().unwrap();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut client, &mut up);
                });
                let _ = std::io::copy(&mut up_reader, &mut client_writer);
            });
        }
    });
}

#[test]
fn a_daemon_without_build_cache_pruning_skips_that_step_saying_why() {
    let d = PrivateDaemon::start();
    d.build("pg-base:1", "", "base");
    let junk = d.dangling("pg-junk:1");
    d.exited("exited1", "pg-base:1");
    settle();
    let proxy = d.dir.path().join("proxy.sock");
    // As Podman answers.
    let not_found = (404, r#"{"message":"page not found"}"#);
    refusing_proxy(&proxy, d.sock.clone(), "/build/prune", not_found);
    let cache_before = d.inventory().build_cache;
    let host = format!("unix://{}", proxy.display());
    let r = d
        .prunegate_cmd_at(&host, OPEN_NOW, &["run", "--json"])
        .output()
        .unwrap();
    let r = Run::from(r);
    no_panic(&r);
    r.expect(0);
    let report = r.json();
    assert_eq!(report["outcome"], "pruned");
    assert_eq!(report["steps"][0]["status"], "done");
    assert_eq!(report["steps"][1]["status"], "done");
    assert_eq!(report["steps"][2]["status"], "skipped");
    let reason = report["steps"][2]["reason"].as_str().unwrap();
    // Podman's step is refused before it is sent (engine.rs); Docker's is sent and answered 404
    // by the proxy.
    let want = match engine().kind {
        Kind::Podman => "Podman has no build-cache prune endpoint",
        Kind::Docker => "no build-cache prune endpoint (404)",
    };
    assert!(reason.contains(want), "{reason}");
    assert!(!d.inventory().images.contains(&junk));
    assert_eq!(
        d.inventory().build_cache,
        cache_before,
        "build cache untouched"
    );
}

#[test]
fn a_daemon_refusing_a_filter_skips_that_step_saying_why() {
    let d = PrivateDaemon::start();
    d.build("pg-base:1", "", "base");
    let junk = d.dangling("pg-junk:1");
    let exited = d.exited("exited1", "pg-base:1");
    settle();
    let proxy = d.dir.path().join("proxy.sock");
    // What a daemon older than the `until` filter answers.
    let invalid = (400, r#"{"message":"invalid filter 'until'"}"#);
    // The container prune: the one every engine is sent with `until` (the images step on the
    // classic store deletes image by image).
    refusing_proxy(&proxy, d.sock.clone(), "/containers/prune", invalid);
    let host = format!("unix://{}", proxy.display());
    let r = Run::from(
        d.prunegate_cmd_at(&host, OPEN_NOW, &["run", "--json"])
            .output()
            .unwrap(),
    );
    no_panic(&r);
    r.expect(0);
    let report = r.json();
    assert_eq!(report["steps"][0]["status"], "skipped");
    let reason = report["steps"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("invalid filter 'until'"), "{reason}");
    assert!(reason.contains("not pruned without them"), "{reason}");
    let after = d.inventory();
    assert!(
        after.containers.contains(&exited),
        "the container prune was never sent without its filter"
    );
    assert_eq!(report["steps"][1]["status"], "done", "the run went on");
    assert!(!after.images.contains(&junk), "the images step ran");
}

/// Plain HTTP to a daemon on another host was accepted silently (issue 22): it is a usage error
/// naming the way out, unless `docker.allow_plain_tcp`; loopback stays allowed; and with the
/// docker CLI's `DOCKER_TLS_VERIFY` the certificates of `DOCKER_CERT_PATH` are used (their
/// absence is then the error, before anything is sent).
#[test]
fn plain_tcp_to_another_host_is_refused_and_the_tls_environment_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let run = |host: &str, config: &str, env: &[(&str, &str)]| {
        let file = dir.path().join(format!("c{}.toml", unique()));
        std::fs::write(&file, config).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_prunegate"));
        cmd.args([
            "check",
            "--config",
            file.to_str().unwrap(),
            "--docker-host",
            host,
        ])
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().unwrap())
    };
    let far = "tcp://192.0.2.1:2375";
    let r = run(far, "", &[]);
    no_panic(&r);
    r.expect(2);
    assert!(r.stderr.contains("docker.allow_plain_tcp"), "{}", r.stderr);
    // Allowed: it is then only unreachable (TEST-NET-1), a runtime error, not a usage one.
    let r = run(
        far,
        "[docker]\nallow_plain_tcp = true\nread_timeout = \"1s\"\n",
        &[],
    );
    no_panic(&r);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = run(
        "tcp://127.0.0.1:1",
        "[docker]\nread_timeout = \"1s\"\n",
        &[],
    );
    assert_eq!(r.code, 1, "loopback is allowed: {}", r.stderr);
    let missing = dir.path().join("no-certs");
    let r = run(
        far,
        "",
        &[
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", missing.to_str().unwrap()),
        ],
    );
    no_panic(&r);
    assert!(
        r.stderr
            .contains(&format!("{}", missing.join("ca.pem").display())),
        "the TLS environment names the CA it needs: {}",
        r.stderr
    );
}

/// SIGTERM ends a run wherever it is blocked (issue 22): a read the daemon never answers is
/// abandoned at the signal, not at the read timeout (60 s here), and the run still reports,
/// outcome `interrupted`, nothing decided on the reads it did not finish.
#[test]
fn sigterm_cuts_a_read_the_daemon_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let sock = silent_daemon(dir.path());
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[docker]\nread_timeout = \"60s\"\n[lock]\npath = \"{}\"\n[state]\ndir = \"{}\"\n",
            dir.path().join("lock").display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_prunegate"))
        .args(["run", "--json", "--config", config.to_str().unwrap()])
        .arg("--docker-host")
        .arg(format!("unix://{}", sock.display()))
        .env_remove("DOCKER_HOST")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough for prunegate to be waiting on its first read.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let r = Run::from(child.wait_with_output().unwrap());
    no_panic(&r);
    r.expect(1);
    let report = r.json();
    assert_eq!(report["outcome"], "interrupted", "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("interrupted by a signal"), "{report}");
    assert!(!r.stdout.contains("no answer within"), "{}", r.stdout);
}
