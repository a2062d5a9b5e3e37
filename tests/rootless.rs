//! A rootless engine, and prunegate run as its unprivileged user the way that user's timer
//! runs it: no address configured, only the session's environment (`HOME`,
//! `XDG_RUNTIME_DIR`). The engine is this run's when it is a rootless one
//! (`docker-20.10-rootless`, `podman-4-rootless`, `podman-5-rootless`, `podman-5.8-rootless`),
//! else `podman-4-rootless`
//! (scripts/engines): the daemon runs as an unprivileged uid, its storage in that user's home.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rootless engine's user as their session sees them: the daemon's uid, its HOME and
/// XDG_RUNTIME_DIR (made by the engine's start script under the daemon's directory), and their
/// copy of prunegate.
struct User {
    uid: u32,
    home: PathBuf,
    runtime: PathBuf,
    bin: PathBuf,
}

impl User {
    /// The user of `d`'s engine, with prunegate in their `~/.local/bin`, as a user installs it:
    /// the build's own binary may be where they cannot reach it (a checkout under `/root`, 0700).
    fn of(d: &PrivateDaemon) -> User {
        let engine_dir = d.dir.path().join("engine");
        let uid = d
            .engine
            .rootless_uid
            .expect("a rootless engine has its uid");
        let home = engine_dir.join("home");
        let bin_dir = home.join(".local/bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        for p in [home.join(".local"), bin_dir.clone()] {
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
        }
        let bin = bin_dir.join("prunegate");
        std::fs::copy(env!("CARGO_BIN_EXE_prunegate"), &bin)
            .unwrap_or_else(|e| panic!("copying prunegate to {}: {e}", bin.display()));
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        User {
            uid,
            home,
            runtime: engine_dir.join("xdg"),
            bin,
        }
    }

    /// Makes `name` in the user's runtime directory a socket of theirs that reaches `d`: the
    /// harness's socket (the user's own) bind-mounted there — a real socket, as prunegate
    /// takes only a socket (a symbolic link would not do). Unmounted when the guard drops.
    fn socket(&self, d: &PrivateDaemon, name: &str) -> Unmount {
        let at = self.runtime.join(name);
        let dir = at.parent().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.uid)).unwrap();
        std::fs::write(&at, "").unwrap();
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(&d.sock)
            .arg(&at)
            .status()
            .unwrap();
        assert!(ok.success(), "bind-mounting the socket at {}", at.display());
        Unmount(at)
    }

    /// The user's prunegate configuration, as a rootless user's
    /// `~/.config/prunegate/config.toml` would say it for a test (a 1% disk threshold, a 0s
    /// cut-off, a grace period the daemon has passed, metrics in their home, whose totals are
    /// kept in the state directory) — and nothing of where state and the lock go: those default
    /// to the user's own.
    fn config(&self) -> PathBuf {
        let dir = self.home.join(".config/prunegate");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "{OPEN_NOW}[gates.grace]\nmin_uptime = \"1s\"\n[metrics]\npath = \"{}\"\n",
                self.home.join("prunegate.prom").display()
            ),
        )
        .unwrap();
        for p in [self.home.join(".config"), dir] {
            std::os::unix::fs::chown(&p, Some(self.uid), Some(self.uid)).unwrap();
        }
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        config
    }

    /// `prunegate ARGS --config CONFIG` as the user, with a session's environment and nothing
    /// else: no `DOCKER_HOST`, no `--docker-host`, no `docker.host`.
    fn prunegate(&self, config: &Path, args: &[&str]) -> Run {
        let out = Command::new("setpriv")
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.uid))
            .args(["--clear-groups", "--inh-caps=-all", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("XDG_RUNTIME_DIR={}", self.runtime.display()))
            .arg("PATH=/usr/bin:/bin")
            .arg(&self.bin)
            .args(args)
            .arg("--config")
            .arg(config)
            .output()
            .expect("setpriv (util-linux) runs prunegate as the rootless user");
        Run::from(out)
    }
}

/// The rootless user's run finds their engine from `XDG_RUNTIME_DIR` alone, measures the disk
/// holding their storage (in their home, as the engine's `/info` says), times the grace gate on
/// their daemon (a process of theirs), and removes exactly what its dry run listed: the junk,
/// not the tagged image nor the running container's.
#[test]
fn a_rootless_users_run_finds_their_engine_and_judges_their_storage_and_daemon() {
    let d = PrivateDaemon::start_rootless();
    let user = User::of(&d);
    let info = d.api("/info");
    let root_dir = info["DockerRootDir"].as_str().unwrap().to_string();
    assert!(
        root_dir.starts_with(user.home.to_str().unwrap()),
        "a rootless engine keeps its storage in the user's home: {root_dir}"
    );
    // The user's own socket where their session has it: rootless Docker's
    // $XDG_RUNTIME_DIR/docker.sock, rootless Podman's $XDG_RUNTIME_DIR/podman/podman.sock.
    let name = match d.engine.kind {
        Kind::Docker => "docker.sock",
        Kind::Podman => "podman/podman.sock",
    };
    let _socket = user.socket(&d, name);
    let config = user.config();

    d.build("pg-base:1", "", "base");
    let tagged = d.build("pg-cache:1", "", "tagged but unused");
    let junk = d.dangling("pg-junk:1");
    let old = d.load_old_dangling("rootless");
    let running = d.run_detached("keeper", "pg-base:1", &[]);
    let exited = d.exited("exited1", "pg-base:1");
    settle();

    let before = d.inventory();
    let dry = user.prunegate(&config, &["run", "--dry-run", "--json"]);
    dry.expect(0);
    let dry = dry.json();
    assert_eq!(d.inventory(), before, "a dry run removes nothing");
    let expected_host = format!("unix://{}", user.runtime.join(name).display());
    assert_eq!(
        dry["docker_host"], expected_host,
        "the socket found from XDG_RUNTIME_DIR: {dry}"
    );
    let disk = gate(&dry, "disk");
    let measured = disk["evidence"]["path"]
        .as_str()
        .or_else(|| disk["evidence"]["filesystems"][0]["path"].as_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        measured, root_dir,
        "the disk gate measures the user's storage: {disk}"
    );
    let grace = gate(&dry, "grace");
    assert_eq!(grace["open"], true, "{grace}");
    assert!(
        grace["evidence"]["daemon_uptime_seconds"].is_u64(),
        "the user's daemon's uptime is known (its process is the user's): {grace}"
    );

    let run = user.prunegate(&config, &["run", "--json"]);
    run.expect(0);
    let run = run.json();
    assert_eq!(run["outcome"], "pruned", "{run}");
    for class in ["containers", "images"] {
        assert_eq!(
            items(&dry, class),
            items(&run, class),
            "{class}: dry run vs run"
        );
    }
    let after = d.inventory();
    assert!(
        !after.containers.contains(&exited),
        "the stopped container went"
    );
    assert!(after.containers.contains(&running), "the running one stays");
    for id in [&junk, &old] {
        assert!(!after.images.contains(id), "junk {id} went");
    }
    assert!(after.images.contains(&tagged), "the tagged image stays");
    // With nothing configured, the run's state and lock are the user's own: in
    // ~/.local/state/prunegate and $XDG_RUNTIME_DIR, never root's /var/lib or /run.
    let owner = |p: PathBuf| {
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        std::os::unix::fs::MetadataExt::uid(&meta)
    };
    assert_eq!(
        owner(user.runtime.join("prunegate.lock")),
        user.uid,
        "the user's run lock"
    );
    assert_eq!(
        owner(user.home.join(".local/state/prunegate/state.json")),
        user.uid,
        "the user's state (the totals)"
    );
    assert!(
        run["warnings"].as_array().is_none_or(|w| w.is_empty()),
        "{run}"
    );
}

/// A second rootless engine of the same user's (here: a Docker socket beside Podman's) is not
/// guessed between: the run stops with a usage error naming both, and removes nothing.
#[test]
fn two_rootless_engines_of_one_user_are_not_guessed_between() {
    let d = PrivateDaemon::start_rootless();
    let user = User::of(&d);
    let config = user.config();
    let _sockets = [
        user.socket(&d, "podman/podman.sock"),
        user.socket(&d, "docker.sock"),
    ];
    d.load_old_dangling("two");
    settle();
    let before = d.inventory();
    let r = user.prunegate(&config, &["run", "--json"]);
    r.expect(2);
    assert!(
        r.stderr.contains("docker.sock") && r.stderr.contains("podman.sock"),
        "{}",
        r.stderr
    );
    assert_eq!(d.inventory(), before, "nothing removed on a usage error");
}

/// Unmounts a bind-mounted socket when the test ends (before the daemon's directory goes).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
