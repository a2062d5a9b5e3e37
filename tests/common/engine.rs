//! Which engine the private daemons run: `PRUNEGATE_TEST_ENGINE` (default `docker-20.10`,
//! Debian 12's docker.io). Any other engine comes from Debian's packages unpacked into a cache
//! by `scripts/engines` (fetched on first use); its manifest says where the daemon, its CLI and
//! their helpers are, and whether the daemon runs the containerd image store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    /// Podman's compat API, served by `podman system service` (started by the engine's `start`
    /// script in a private mount namespace).
    Podman,
}

#[derive(Debug, Clone)]
pub struct TestEngine {
    /// As in the matrix: `docker-20.10`, `docker-26-containerd`, `podman-4`…
    pub name: String,
    pub kind: Kind,
    /// The package version actually unpacked (scripts/engines may fall back when a pin is gone).
    pub version: String,
    /// dockerd, or for Podman the script that starts its service (`start DIR SOCK`).
    pub dockerd: PathBuf,
    /// That engine's own docker CLI: the right client for its fixtures.
    pub cli: PathBuf,
    /// Prepended to PATH for the daemon: where its containerd and shims are.
    pub path_prefix: String,
    /// The CLI plugins directory (docker-buildx), linked into the client's config directory.
    pub cli_plugins: Option<PathBuf>,
    /// `{"features": {"containerd-snapshotter": true}}` in the daemon's config.
    pub containerd_store: bool,
    /// For a rootless engine, the unprivileged uid its daemon runs as (and prunegate, in the
    /// rootless tests).
    pub rootless_uid: Option<u32>,
}

/// The engine of this test run, read once.
pub fn engine() -> &'static TestEngine {
    static ENGINE: OnceLock<TestEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let name =
            std::env::var("PRUNEGATE_TEST_ENGINE").unwrap_or_else(|_| "docker-20.10".to_string());
        load(&name)
    })
}

/// The rootless engine of the rootless tests: the engine of this run when it is one, else
/// `podman-4-rootless` (so that those tests run, and never skip, under any engine).
pub fn rootless() -> &'static TestEngine {
    static ROOTLESS: OnceLock<TestEngine> = OnceLock::new();
    if engine().rootless_uid.is_some() {
        return engine();
    }
    ROOTLESS.get_or_init(|| load("podman-4-rootless"))
}

fn load(name: &str) -> TestEngine {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/engines");
    let out = Command::new(&script)
        .args(["path", name])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "PRUNEGATE_TEST_ENGINE={name}: `scripts/engines path {name}` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let kv: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |key: &str| -> String {
        kv.get(key)
            .unwrap_or_else(|| panic!("{}: no {key}", manifest.display()))
            .to_string()
    };
    let engine = TestEngine {
        name: name.to_string(),
        kind: if get("KIND") == "podman" {
            Kind::Podman
        } else {
            Kind::Docker
        },
        version: get("VERSION"),
        dockerd: get("DOCKERD").into(),
        cli: get("CLI").into(),
        path_prefix: get("PATH_PREFIX"),
        cli_plugins: Some(get("CLI_PLUGINS"))
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        containerd_store: get("CONTAINERD_STORE") == "1",
        rootless_uid: kv.get("ROOTLESS_UID").map(|u| {
            u.parse()
                .unwrap_or_else(|e| panic!("{}: ROOTLESS_UID {u:?}: {e}", manifest.display()))
        }),
    };
    for (what, path) in [("dockerd", &engine.dockerd), ("docker CLI", &engine.cli)] {
        assert!(
            path.exists(),
            "{name}: {what} {} is missing: run scripts/engines fetch {name}",
            path.display()
        );
    }
    eprintln!("test engine: {name} {}", engine.version);
    engine
}

impl TestEngine {
    /// PATH for the daemon: the engine's own containerd first.
    pub fn daemon_path(&self) -> String {
        let system = std::env::var("PATH").unwrap_or_default();
        if self.path_prefix.is_empty() {
            system
        } else {
            format!("{}:{system}", self.path_prefix)
        }
    }

    /// Whether the engine's builds can use BuildKit (`DOCKER_BUILDKIT=1`): Podman's compat API
    /// builds with Buildah, the classic way.
    pub fn buildkit(&self) -> bool {
        self.kind == Kind::Docker
    }

    /// Whether the engine can pause a container: not rootless on cgroup v1 (no
    /// `/sys/fs/cgroup/cgroup.controllers`), where its containers have no cgroup to freeze.
    pub fn can_pause(&self) -> bool {
        self.rootless_uid.is_none() || Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    }

    /// Whether the daemon can pull from a registry on the host's loopback: not rootless Docker
    /// here, which runs with the host's network (slirp4netns cannot open /dev/net/tun in this
    /// sandbox), where its dockerd, in its own user namespace, cannot return a thread to the
    /// host's network namespace after entering a container's: later connections to 127.0.0.1
    /// are refused.
    pub fn pulls_from_loopback(&self) -> bool {
        self.kind == Kind::Podman || self.rootless_uid.is_none()
    }

    /// Whether the engine keeps a build cache it can prune (`/build/prune`): Podman does not.
    pub fn has_build_cache(&self) -> bool {
        self.kind == Kind::Docker
    }

    /// The daemon's config file contents.
    pub fn daemon_json(&self) -> &'static str {
        if self.containerd_store {
            r#"{"features": {"containerd-snapshotter": true}}"#
        } else {
            "{}"
        }
    }

    /// A client config directory under `dir` whose `cli-plugins` holds the engine's buildx, so
    /// that `DOCKER_BUILDKIT=1 docker build` finds it; `None` for a CLI with BuildKit built in.
    pub fn client_config(&self, dir: &Path) -> Option<PathBuf> {
        let plugins = self.cli_plugins.as_ref()?;
        let config = dir.join("docker-config");
        let linked = config.join("cli-plugins");
        if !linked.exists() {
            std::fs::create_dir_all(&config).unwrap();
            std::os::unix::fs::symlink(plugins, &linked).unwrap();
        }
        Some(config)
    }
}
