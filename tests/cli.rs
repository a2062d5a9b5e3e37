//! The command-line contract that needs no daemon: config errors and unreachable daemons.

use std::process::Command;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn prunegate(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_prunegate"))
        .args(args)
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn with_config(text: &str, args: &[&str]) -> Out {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    let mut all = args.to_vec();
    let path = f.path().to_str().unwrap().to_string();
    all.extend(["--config", &path]);
    prunegate(&all)
}

#[test]
fn config_errors_exit_2_naming_the_key() {
    let cases = [
        ("[gates.disk]\nused_prcent = 80\n", "used_prcent"),
        ("[prune]\ncontainers = \"yes\"\n", "prune.containers"),
        (
            "[gates.live_runs]\npattern = \"ci-(\"\n",
            "gates.live_runs.pattern",
        ),
        ("[prune]\nolder_than = \"3d\"\n", "prune.older_than"),
        (
            "[gates.disk]\nused_percent = 120\n",
            "gates.disk.used_percent",
        ),
        (
            "[docker]\nprune_timeout = \"soon\"\n",
            "docker.prune_timeout",
        ),
    ];
    for (text, key) in cases {
        for command in [
            &["config", "check"][..],
            &["run"][..],
            &["check", "--json"][..],
        ] {
            let out = with_config(text, command);
            assert_eq!(out.code, 2, "{command:?} with {text:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(key),
                "{command:?} with {text:?} should name {key}: {}",
                out.stderr
            );
            assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        }
    }
}

#[test]
fn json_mode_reports_a_config_error_as_json() {
    let out = with_config("bogus = 1\n", &["run", "--json"]);
    assert_eq!(out.code, 2);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["outcome"], "error");
    assert!(doc["error"].as_str().unwrap().contains("bogus"));
}

#[test]
fn missing_explicit_config_is_an_error_but_missing_default_is_not() {
    let out = prunegate(&["config", "check", "--config", "/nonexistent/prunegate.toml"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("/nonexistent/prunegate.toml"),
        "{}",
        out.stderr
    );
    if !std::path::Path::new("/etc/prunegate/config.toml").exists() {
        let out = prunegate(&["config", "show"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains("older_than = \"24h\""),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("used_percent = 80"), "{}", out.stdout);
    }
}

#[test]
fn shipped_example_config_is_valid_and_states_the_defaults() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prunegate.toml");
    let out = prunegate(&["config", "check", "--config", example]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let shown = prunegate(&["config", "show", "--config", example]).stdout;
    let defaults = prunegate(&["config", "show", "--config", "/dev/null"]).stdout;
    assert_eq!(
        shown, defaults,
        "config/prunegate.toml must spell out exactly the defaults"
    );
}

#[test]
fn bad_docker_host_is_a_usage_error() {
    for host in ["ftp://x", "var/run/docker.sock", "tcp://"] {
        let out = prunegate(&["check", "--docker-host", host]);
        assert_eq!(out.code, 2, "{host}: {}", out.stderr);
        assert!(out.stderr.contains("--docker-host"), "{}", out.stderr);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_prunegate"))
        .args(["check", "--config", "/dev/null"])
        .env("DOCKER_HOST", "nonsense")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DOCKER_HOST"));
}

#[test]
fn unreachable_daemon_is_a_runtime_failure_and_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/absent.sock", dir.path().display());
    let config = dir.path().join("config.toml");
    let lock = format!("[lock]\npath = \"{}/lock\"\n", dir.path().display());
    std::fs::write(&config, lock).unwrap();
    let config = config.to_str().unwrap();
    for command in ["run", "check", "reclaim"] {
        let out = prunegate(&[
            command,
            "--json",
            "--config",
            config,
            "--docker-host",
            &host,
        ]);
        assert_eq!(out.code, 1, "{command}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("absent.sock"), "{}", out.stderr);
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(doc["outcome"], "error");
        assert_eq!(doc["command"], command);
    }
}
