//! Checks of the systemd units and the NixOS module that run offline (no nixpkgs): every Nix
//! file parses and is linted, the builtins-only module data evaluates to the expected values,
//! the units rendered from it pass `systemd-analyze verify` and `security`, and settings
//! written by the module are accepted by `prunegate config check`. The NixOS VM test in
//! nix/vm-test.nix is not run here. The tools come from scripts/setup; a missing one fails.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str, how: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    let cargo_bin = dirs_cargo_bin().join(name);
    if found {
        Command::new(name)
    } else if cargo_bin.is_file() {
        Command::new(cargo_bin)
    } else {
        panic!("{name} is missing: {how} (scripts/setup does it)")
    }
}

fn dirs_cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.current_dir(root()).output().expect("running a tool");
    out
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// These evaluations need no Nix store, and opening one makes parallel tests race on a fresh
/// machine's database ("SQLite database … is busy"). `--readonly-mode` kept Nix 2.8 (Debian
/// 12's) out of it but not Nix 2.26 (Debian 13's); the dummy store opens no database on either.
const NO_STORE: [&str; 2] = ["--store", "dummy://"];

/// Evaluates a Nix expression (with `data` bound to nix/data.nix) to JSON.
fn nix_eval(expr: &str) -> Value {
    let mut cmd = tool("nix-instantiate", "apt-get install nix-bin");
    cmd.args(NO_STORE)
        .args(["--eval", "--strict", "--json", "-E"])
        .arg(format!("let data = import ./nix/data.nix; in {expr}"));
    let out = run(cmd);
    ok(&out, &format!("nix-instantiate --eval {expr}"));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn nix_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("flake.nix")];
    for dir in ["nix", "tests/nix"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "nix") {
                files.push(p);
            }
        }
    }
    files
}

fn prunegate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prunegate"))
        .args(args)
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap()
}

#[test]
fn every_nix_file_parses_and_passes_the_linters() {
    let files = nix_files();
    assert!(files.len() >= 5, "{files:?}");
    for f in &files {
        let mut cmd = tool("nix-instantiate", "apt-get install nix-bin");
        cmd.args(NO_STORE).arg("--parse").arg(f);
        ok(
            &run(cmd),
            &format!("nix-instantiate --parse {}", f.display()),
        );
    }
    let mut deadnix = tool("deadnix", "cargo install --locked deadnix");
    deadnix.arg("--fail").args(&files);
    ok(&run(deadnix), "deadnix --fail");
    let mut nixfmt = tool("nixfmt", "cargo install --locked nixfmt_rs");
    nixfmt.arg("--check").args(&files);
    ok(&run(nixfmt), "nixfmt --check");
}

/// Where scripts/setup installs remarshal, pinned: its `json2toml` is what nixpkgs'
/// `formats.toml` runs to render the module's settings (`json2toml "$valuePath" "$out"` on the
/// settings' `builtins.toJSON`).
const JSON2TOML: &str = "/var/cache/prunegate-test/remarshal-1.3.0/bin/json2toml";

/// Renders a Nix settings value to TOML exactly as the NixOS module does: `builtins.toJSON`,
/// then json2toml. Returns the file, in `dir`.
fn render_settings(dir: &Path, expr: &str) -> PathBuf {
    assert!(
        Path::new(JSON2TOML).is_file(),
        "{JSON2TOML} is missing: run scripts/setup (it installs remarshal 1.3.0 from PyPI)"
    );
    let json = nix_eval(expr);
    let json_file = dir.join("settings.json");
    std::fs::write(&json_file, json.to_string()).unwrap();
    let toml_file = dir.join("prunegate.toml");
    let out = Command::new(JSON2TOML)
        .arg(&json_file)
        .arg(&toml_file)
        .output()
        .expect("running json2toml");
    ok(&out, "json2toml");
    toml_file
}

#[test]
fn module_defaults_are_prunegates_defaults() {
    let timer = nix_eval("data.timerDefaults");
    assert_eq!(timer["dates"], "*:0/15");
    assert_eq!(timer["randomizedDelaySec"], "2min");
    assert_eq!(timer["persistent"], true);
    // The module's settings defaults, rendered to TOML as the module renders them, equal what
    // prunegate itself shows as its defaults.
    let dir = tempfile::tempdir().unwrap();
    let file = render_settings(dir.path(), "data.settingsDefaults");
    let module: toml::Value = toml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let shown = prunegate(&["config", "show", "--config", "/dev/null"]);
    ok(&shown, "prunegate config show");
    let mut binary: toml::Value = toml::from_str(&String::from_utf8_lossy(&shown.stdout)).unwrap();
    binary["docker"].as_table_mut().unwrap().remove("host");
    // Optional paths left unset show as empty tables, which TOML cannot tell from absent ones.
    binary
        .as_table_mut()
        .unwrap()
        .retain(|_, v| v.as_table().is_none_or(|t| !t.is_empty()));
    assert_eq!(module, binary);
}

#[test]
fn module_settings_round_trip_through_prunegate_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = render_settings(
        dir.path(),
        r#"data.merge data.settingsDefaults {
             gates.live_runs.pattern = "^(ci|pr)-[0-9]+$ \"quoted\" \\ back";
             gates.disk.path = "/var/lib/docker";
             prune.older_than = "48h";
             prune.build_cache = false;
           }"#,
    );
    let check = prunegate(&["config", "check", "--config", file.to_str().unwrap()]);
    ok(&check, "prunegate config check on the module's TOML");
    let shown = prunegate(&["config", "show", "--config", file.to_str().unwrap()]);
    let shown: toml::Value = toml::from_str(&String::from_utf8_lossy(&shown.stdout)).unwrap();
    assert_eq!(
        shown["gates"]["live_runs"]["pattern"].as_str(),
        Some("^(ci|pr)-[0-9]+$ \"quoted\" \\ back")
    );
    assert_eq!(
        shown["gates"]["disk"]["path"].as_str(),
        Some("/var/lib/docker")
    );
    assert_eq!(shown["prune"]["older_than"].as_str(), Some("48h"));
    assert_eq!(shown["prune"]["build_cache"].as_bool(), Some(false));
    // A bad value is refused the way the module's build-time check refuses it: naming the key.
    let bad = render_settings(
        dir.path(),
        "data.merge data.settingsDefaults { gates.disk.used_percent = 120; }",
    );
    let check = prunegate(&["config", "check", "--config", bad.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&check.stderr).contains("gates.disk.used_percent"));
}

/// Finding 5 of the NixOS issue: the module's settings type is nixpkgs' TOML value (lists,
/// floats, nested tables, lists of tables), so what the module renders must be read back by
/// prunegate's TOML parser exactly (the hand-written writer threw on a list).
#[test]
fn lists_floats_and_nested_tables_render_and_read_back_exactly() {
    let expr = r#"{
        retention = { keep = [ "^registry.example/base/" "^postgres:" ]; ratio = 0.75; };
        swarm = { managers = [ "tcp://10.0.0.1:2376" "tcp://[fd00::2]:2376" ]; cert_path = "/etc/prunegate/tls"; };
        deep = { a = { b = { c = [ 1 2.5 "x" true ]; }; }; };
        table_list = [ { name = "one"; n = 1; } { name = "two"; n = 2; } ];
      }"#;
    let dir = tempfile::tempdir().unwrap();
    let file = render_settings(dir.path(), expr);
    // The toml crate, at the version Cargo.lock pins, is prunegate's own config parser.
    let read: toml::Value = toml::from_str(&std::fs::read_to_string(&file).unwrap())
        .unwrap_or_else(|e| panic!("prunegate cannot parse the module's TOML: {e}"));
    let as_json = serde_json::to_value(&read).unwrap();
    assert_eq!(as_json, nix_eval(expr));
}

const HEADER: &str =
    "# Rendered from nix/data.nix by scripts/render-units: edit that file, not this one.\n";

#[test]
fn plain_units_are_the_rendering_of_the_module_data() {
    for (file, expr) in [
        ("prunegate.service", "data.plainService { }"),
        ("prunegate.timer", "data.plainTimer { }"),
    ] {
        let rendered = format!("{HEADER}{}", nix_eval(expr).as_str().unwrap());
        let committed = std::fs::read_to_string(root().join("config/systemd").join(file)).unwrap();
        assert_eq!(
            committed, rendered,
            "config/systemd/{file} is stale: run scripts/render-units"
        );
    }
    let drop_in = root().join("config/systemd/prunegate.service.d/swarm-worker.conf");
    let committed = std::fs::read_to_string(&drop_in).unwrap();
    let rendered = nix_eval(
        r#"data.plainNetworkDropIn { swarm.managers = [ "tcp://10.0.0.1:7676" "tcp://10.0.0.2:7676" ]; swarm.cert_path = "/etc/prunegate/worker"; }"#,
    );
    assert!(
        committed.starts_with(HEADER) && committed.ends_with(rendered.as_str().unwrap()),
        "{} is stale: run scripts/render-units",
        drop_in.display()
    );
    let tmpfiles =
        std::fs::read_to_string(root().join("config/tmpfiles.d/prunegate.conf")).unwrap();
    let lines = nix_eval(r#"data.tmpfiles "/run/prunegate/run.lock""#);
    for line in lines.as_array().unwrap() {
        assert!(
            tmpfiles.lines().any(|l| l == line.as_str().unwrap()),
            "config/tmpfiles.d/prunegate.conf lacks {line}: run scripts/render-units"
        );
    }
    // The lock's directory is root's alone and the file root-owned, readable by all: the
    // shapes src/lock.rs accepts (tests there refuse the others).
    assert!(
        tmpfiles.contains("d /run/prunegate 0755 root root -"),
        "{tmpfiles}"
    );
    assert!(
        tmpfiles.contains("f /run/prunegate/run.lock 0644 root root -"),
        "{tmpfiles}"
    );
}

/// A rootless user's units (config/systemd/user/): the rendering of the module data, verified
/// by the user manager's rules (`systemd-analyze --user verify`, no warning), running nothing
/// a user manager cannot (no user switch, no group), the config in the user's config home and
/// the state in their StateDirectory. Their exposure is printed
/// (`cargo test --test packaging rootless -- --nocapture`), not bounded: a user manager cannot
/// apply the mount and user sandboxing that bring the system unit's down.
#[test]
fn a_rootless_users_units_are_rendered_and_verify_as_user_units() {
    let binary = env!("CARGO_BIN_EXE_prunegate");
    let dir = tempfile::tempdir().unwrap();
    for (file, expr, intro) in [
        ("prunegate.service", "data.plainUserService { }", 1),
        ("prunegate.timer", "data.plainTimer { }", 0),
        (
            "prunegate-record.service",
            "data.plainUserRecordService { }",
            1,
        ),
    ] {
        let rendered = nix_eval(expr);
        let rendered = rendered.as_str().unwrap();
        let path = root().join("config/systemd/user").join(file);
        let committed = std::fs::read_to_string(&path).unwrap();
        assert!(
            committed.starts_with(HEADER)
                && committed.lines().count() == rendered.lines().count() + 1 + intro
                && committed.ends_with(rendered),
            "{} is stale: run scripts/render-units",
            path.display()
        );
        for forbidden in [
            "User=",
            "DynamicUser=",
            "SupplementaryGroups=",
            "PrivateUsers=",
        ] {
            assert!(!rendered.contains(forbidden), "{file}: {forbidden}");
        }
        let unit = match file {
            "prunegate.timer" => rendered.to_string(),
            _ => nix_eval(&expr.replace("{ }", &format!("{{ prunegate = \"{binary}\"; }}")))
                .as_str()
                .unwrap()
                .to_string(),
        };
        std::fs::write(dir.path().join(file), unit).unwrap();
    }
    let service = std::fs::read_to_string(dir.path().join("prunegate.service")).unwrap();
    assert!(
        service.contains(" run --config %E/prunegate/config.toml\n")
            && service.contains("StateDirectory=prunegate\n"),
        "{service}"
    );
    // A user manager's unit paths live in the runtime directory: a private one for the check.
    let runtime = tempfile::tempdir().unwrap();
    let mut verify = tool("systemd-analyze", "apt-get install systemd");
    verify
        .args(["--user", "verify", "--man=no"])
        .args([
            "prunegate.service",
            "prunegate.timer",
            "prunegate-record.service",
        ])
        .env("XDG_RUNTIME_DIR", runtime.path())
        .current_dir(dir.path());
    let verify = verify.output().unwrap();
    ok(&verify, "systemd-analyze --user verify");
    assert!(
        verify.stderr.is_empty(),
        "systemd-analyze --user verify printed warnings:\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    for unit in ["prunegate.service", "prunegate-record.service"] {
        let mut security = tool("systemd-analyze", "apt-get install systemd");
        security
            .args(["--user", "security", "--offline=true", unit])
            .env("XDG_RUNTIME_DIR", runtime.path())
            .current_dir(dir.path());
        let security = security.output().unwrap();
        println!("exposure of the user's {unit}: {}", exposure(&security));
    }
}

/// A swarm worker asks its managers over TCP: their addresses (and the daemon's socket) are all
/// the unit opens, and its exposure stays at most 2.0 — printed with
/// `cargo test --test packaging swarm_worker -- --nocapture`.
#[test]
fn a_swarm_workers_unit_opens_its_managers_addresses_only() {
    let binary = env!("CARGO_BIN_EXE_prunegate");
    let timer = nix_eval("data.plainTimer { }");
    let service = nix_eval(&format!(
        r#"data.plainService {{ prunegate = "{binary}"; settings.swarm.managers = [ "tcp://10.0.0.1:2376" "tcp://[fd00::2]:2376" "tcp://10.0.0.1:2377" ]; }}"#
    ));
    let service = service.as_str().unwrap();
    assert!(service.contains("PrivateNetwork=no\n"), "{service}");
    for allow in ["10.0.0.1", "fd00::2"] {
        assert_eq!(
            service
                .matches(&format!("IPAddressAllow={allow}\n"))
                .count(),
            1,
            "{service}"
        );
    }
    assert!(service.contains("IPAddressDeny=any\n"), "{service}");
    let named = nix_eval(&format!(
        r#"data.plainService {{ prunegate = "{binary}"; settings.swarm.managers = [ "tcp://10.0.0.1:2376" "tcp://manager.internal:2376" ]; }}"#
    ));
    assert!(
        named.as_str().unwrap().contains("IPAddressAllow=any\n"),
        "{named}"
    );
    let (verify, security) = analyze(service, timer.as_str().unwrap());
    ok(&verify, "systemd-analyze verify");
    ok(&security, "systemd-analyze security --threshold=20");
    let score = exposure(&security);
    println!("exposure of a swarm worker's unit (two managers): {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0");
}

/// Writes `service` and the timer into a directory and runs systemd-analyze on them.
fn analyze(service: &str, timer: &str) -> (Output, Output) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prunegate.service"), service).unwrap();
    std::fs::write(dir.path().join("prunegate.timer"), timer).unwrap();
    let mut verify = tool("systemd-analyze", "apt-get install systemd");
    verify
        .args(["verify", "--man=no", "prunegate.service", "prunegate.timer"])
        .current_dir(dir.path());
    let verify = verify.output().unwrap();
    let mut security = tool("systemd-analyze", "apt-get install systemd");
    security
        .args([
            "security",
            "--offline=true",
            "--threshold=20",
            "prunegate.service",
        ])
        .current_dir(dir.path());
    (verify, security.output().unwrap())
}

fn exposure(security: &Output) -> f64 {
    let text = String::from_utf8_lossy(&security.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line in:\n{text}"));
    line.split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn units_verify_cleanly_and_score_at_most_2_0() {
    let binary = env!("CARGO_BIN_EXE_prunegate");
    let timer = nix_eval("data.plainTimer { }");
    let timer = timer.as_str().unwrap();
    // The plain unit, and the unit as the module writes it (store paths for binary and config).
    for args in [
        format!("{{ prunegate = \"{binary}\"; }}"),
        format!("{{ prunegate = \"{binary}\"; configFile = \"/nix/store/00000000000000000000000000000000-prunegate.toml\"; }}"),
    ] {
        // The timer's service, and the recorder (always on beside it with the retention class).
        for unit in ["plainService", "plainRecordService"] {
            let service = nix_eval(&format!("data.{unit} {args}"));
            let (verify, security) = analyze(service.as_str().unwrap(), timer);
            ok(&verify, "systemd-analyze verify");
            assert!(
                verify.stderr.is_empty(),
                "{unit}: systemd-analyze verify printed warnings:\n{}",
                String::from_utf8_lossy(&verify.stderr)
            );
            ok(&security, "systemd-analyze security --threshold=20");
            let score = exposure(&security);
            println!("exposure of {unit}: {score}");
            assert!(score <= 2.0, "{unit}: exposure {score} > 2.0");
        }
    }
}

/// Finding 6 of the NixOS issue: a `tcp://` docker.host opens exactly the address families and
/// the address it needs (a Unix socket opens nothing), and the unit still verifies; the exposure
/// score of each is printed (`cargo test --test packaging tcp -- --nocapture`).
#[test]
fn a_tcp_docker_host_opens_that_address_only_and_the_unit_still_verifies() {
    let binary = env!("CARGO_BIN_EXE_prunegate");
    let timer = nix_eval("data.plainTimer { }");
    let unit = |host: &str| {
        nix_eval(&format!(
            "data.plainService {{ prunegate = \"{binary}\"; settings.docker.host = \"{host}\"; }}"
        ))
        .as_str()
        .unwrap()
        .to_string()
    };
    let socket = unit("unix:///run/docker.sock");
    assert_eq!(
        socket,
        nix_eval(&format!(
            "data.plainService {{ prunegate = \"{binary}\"; }}"
        ))
    );
    assert!(
        socket.contains("PrivateNetwork=yes\n")
            && socket.contains("RestrictAddressFamilies=AF_UNIX\n")
    );
    assert!(!socket.contains("IPAddressAllow"));
    for (host, allow) in [
        ("tcp://10.0.0.1:2376", "10.0.0.1"),
        ("tcp://[fd00::1]:2376", "fd00::1"),
        ("tcp://docker.internal:2375", "any"),
    ] {
        let service = unit(host);
        assert!(service.contains("PrivateNetwork=no\n"), "{service}");
        assert!(
            service.contains(&format!("IPAddressAllow={allow}\n")),
            "{service}"
        );
        assert!(service.contains("IPAddressDeny=any\n"), "{service}");
        for family in ["AF_UNIX", "AF_INET", "AF_INET6"] {
            assert!(
                service.contains(&format!("RestrictAddressFamilies={family}\n")),
                "{service}"
            );
        }
        let (verify, security) = analyze(&service, timer.as_str().unwrap());
        ok(&verify, "systemd-analyze verify");
        assert!(
            verify.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        ok(&security, "systemd-analyze security --threshold=20");
        println!(
            "exposure with docker.host = {host}: {}",
            exposure(&security)
        );
    }
    let (_, security) = analyze(&socket, timer.as_str().unwrap());
    let score = exposure(&security);
    println!("exposure with a Unix socket: {score}");
    // Issue 22's bound for the socket-only unit, with TimeoutStartSec, MemoryMax and TasksMax.
    assert!(score <= 1.0, "socket-only exposure {score} > 1.0");
}

#[test]
fn timer_values_are_valid_systemd_values() {
    let timer = nix_eval("data.timerDefaults");
    let mut calendar = tool("systemd-analyze", "apt-get install systemd");
    calendar.args(["calendar", timer["dates"].as_str().unwrap()]);
    ok(&run(calendar), "systemd-analyze calendar");
    let mut timespan = tool("systemd-analyze", "apt-get install systemd");
    timespan.args(["timespan", timer["randomizedDelaySec"].as_str().unwrap()]);
    ok(&run(timespan), "systemd-analyze timespan");
    // And a bad value is caught by the same check.
    let mut bad = tool("systemd-analyze", "apt-get install systemd");
    bad.args(["calendar", "every tuesday-ish"]);
    assert!(!run(bad).status.success());
}

#[test]
fn man_page_and_completions_come_from_the_cli_definition() {
    let man = prunegate(&["man"]);
    ok(&man, "prunegate man");
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH prunegate 1"), "{man}");
    for sub in ["run", "check", "reclaim", "config"] {
        assert!(
            man.contains(&format!("prunegate\\-{sub}")),
            "man page lists {sub}"
        );
    }
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef prunegate"),
        ("fish", "complete -c prunegate"),
    ] {
        let out = prunegate(&["completions", shell]);
        ok(&out, shell);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell} completion lacks {marker:?}");
        assert!(
            text.contains("reclaim"),
            "{shell} completion knows the subcommands"
        );
    }
}

/// The shipped alert rules load, and their unit test passes: the blocked alert fires after 6 h
/// of a closed gate on a full disk, names the gate, and clears once a run has pruned.
#[test]
fn alert_rules_load_and_their_promtool_test_passes() {
    let how = "apt-get install prometheus";
    let mut check = tool("promtool", how);
    check.args(["check", "rules", "config/prometheus/prunegate.rules.yml"]);
    ok(&run(check), "promtool check rules");
    let mut test = tool("promtool", how);
    test.args(["test", "rules", "prunegate.rules.test.yml"]);
    let out = test
        .current_dir(root().join("config/prometheus"))
        .output()
        .expect("running promtool");
    ok(&out, "promtool test rules");
}
