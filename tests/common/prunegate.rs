//! Running prunegate against a private daemon, and reading its reports.

use super::{unique, PrivateDaemon};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

impl PrivateDaemon {
    /// Runs `prunegate <command> --json` and checks that gate `name` closed it (exit 10,
    /// outcome `skipped`, reason containing `says`) and that nothing was removed. Returns the
    /// report.
    pub fn expect_closed(&self, config: &str, command: &str, name: &str, says: &str) -> Value {
        let before = self.settled_inventory();
        let r = self.prunegate(config, &[command, "--json"]);
        r.expect(10);
        let report = r.json();
        assert_eq!(report["outcome"], "skipped", "{command}");
        let g = gate(&report, name);
        assert_eq!(g["open"], false, "{command}: {g}");
        assert!(
            g["reason"].as_str().unwrap().contains(says),
            "{command}: {g}"
        );
        assert_eq!(
            self.inventory(),
            before,
            "{command}: a closed gate removes nothing"
        );
        report
    }

    /// A prunegate command against this daemon with a config written from `config_toml`.
    /// Unless the config says otherwise, the run lock and the state directory live in this
    /// test's directory (tests run in parallel, each with its own daemon) and the grace period
    /// is 0 (the daemon is seconds old); the lock and grace tests set both themselves.
    pub fn prunegate_cmd(&self, config_toml: &str, args: &[&str]) -> Command {
        self.prunegate_cmd_at(&self.host, config_toml, args)
    }

    /// As [`Self::prunegate_cmd`], against the daemon address `host`.
    pub fn prunegate_cmd_at(&self, host: &str, config_toml: &str, args: &[&str]) -> Command {
        let config = self.dir.path().join(format!("config-{}.toml", unique()));
        let mut text = config_toml.to_string();
        if !text.contains("[lock]") {
            text.push_str(&format!(
                "\n[lock]\npath = \"{}\"\n",
                self.lock_path().display()
            ));
        }
        // prunegate's state (the tags seen, the totals) in this test's directory: the
        // default, /var/lib/prunegate, would be shared by tests running in parallel and is the
        // host's.
        if !text.contains("[state]") {
            text.push_str(&format!(
                "\n[state]\ndir = \"{}\"\n",
                self.dir.path().join("state").display()
            ));
        }
        if !text.contains("[gates.grace]") {
            text.push_str("\n[gates.grace]\nmin_uptime = \"0s\"\n");
        }
        std::fs::write(&config, text).unwrap();
        // A node's prunegate runs in its network namespace, where its managers are reachable.
        let mut cmd = match &self.node {
            Some(n) => {
                let mut c = n.enter();
                c.arg(env!("CARGO_BIN_EXE_prunegate"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_prunegate")),
        };
        cmd.args(args)
            .arg("--config")
            .arg(&config)
            .arg("--docker-host")
            .arg(host)
            .env_remove("DOCKER_HOST");
        cmd
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.path().join("prunegate.lock")
    }

    /// Runs prunegate against this daemon and waits for it.
    pub fn prunegate(&self, config_toml: &str, args: &[&str]) -> Run {
        Run::from(
            self.prunegate_cmd(config_toml, args)
                .output()
                .expect("running prunegate"),
        )
    }

    /// Starts `prunegate run --json` and returns once its container prune is under way.
    pub fn spawn_run_until_container_prune(&self, config: &str) -> std::process::Child {
        let total = self.container_count();
        let child = self
            .prunegate_cmd(config, &["run", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.wait_for("the container prune to start", || {
            self.container_count() < total
        });
        child
    }

    /// Checks a report of a run stopped after its container step: that step finished with `n`
    /// containers, the image and build-cache steps were skipped saying `why`, and the dangling
    /// image `junk` is still there.
    pub fn assert_stopped_after_containers(&self, report: &Value, n: u64, why: &str, junk: &str) {
        assert_eq!(
            report["steps"][0]["status"], "done",
            "the step in progress finished"
        );
        assert_eq!(report["steps"][0]["count"], n);
        for step in [1, 2] {
            assert_eq!(report["steps"][step]["status"], "skipped");
            let reason = report["steps"][step]["reason"].as_str().unwrap();
            assert!(reason.contains(why), "{reason}");
        }
        assert!(
            self.inventory().images.contains(&junk.to_string()),
            "the image step never ran"
        );
    }
}

/// A finished prunegate process.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "prunegate's stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Gate `name` of a JSON report.
pub fn gate<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["gates"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == name))
        .unwrap_or_else(|| panic!("no gate {name} in {report}"))
}

/// Items of step `class` of a JSON report, sorted.
pub fn items(report: &Value, class: &str) -> Vec<String> {
    let mut v: Vec<String> = report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["class"] == class))
        .map(|s| s["items"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Where the build-cache records a run removed (`removed`) disagree with its dry run `dry`:
/// every record the dry run was certain of must go, and nothing may go that it did not list as
/// certain or as `may_also_remove`. Empty when they agree.
pub fn build_cache_outside_prediction(dry: &Value, removed: &[String]) -> Vec<String> {
    let certain = items(dry, "build_cache");
    let possible: Vec<String> = dry["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["class"] == "build_cache"))
        .and_then(|s| s["may_also_remove"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_string))
        .collect();
    let stayed = certain
        .iter()
        .filter(|id| !removed.contains(id))
        .map(|id| format!("build cache {id}: the dry run said it goes; it stayed"));
    let unlisted = removed
        .iter()
        .filter(|id| !certain.contains(id) && !possible.contains(id))
        .map(|id| format!("build cache {id}: removed, not in the dry run"));
    stayed.chain(unlisted).collect()
}

/// A config where the disk gate is open on any real disk (1% used) and nothing is too young.
pub const OPEN_NOW: &str = "[gates.disk]\nused_percent = 1\n[prune]\nolder_than = \"0s\"\n";

/// Wait so that objects made just now are strictly older than a `0s` cut-off, whole seconds.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(1100));
}
