//! The private daemon's life: started on its own data root, exec root, pid file and socket
//! under a fresh temporary directory, with `--bridge=none --iptables=false --ip-masq=false` so
//! it leaves the host's networking alone; killed and restarted for the fault tests; stopped,
//! with every mount it made, when the test ends.

use super::{engine, Kind, TestEngine};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const BUSYBOX: &str = "/bin/busybox";

/// Swarm-mode daemons share the gossip port 7946: only one may exist at a time.
pub static SWARM_LOCK: Mutex<()> = Mutex::new(());

pub struct PrivateDaemon {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub host: String,
    /// The engine it runs: the run's ([`engine`]), or the rootless one of the rootless tests.
    pub engine: &'static TestEngine,
    child: Child,
    mounts: Vec<PathBuf>,
    /// Set for a node of a multi-node test: the daemon runs in that network namespace (only
    /// the network one: `ip netns exec` would give it a fresh /sys, and dockerd then stops with
    /// "Devices cgroup isn't mounted"), with `args` added, and prunegate runs there too.
    pub node: Option<Node>,
}

/// Where a node's daemon runs: a named network namespace (`ip netns`), and its extra dockerd
/// arguments (a TCP listener with TLS, for a manager).
#[derive(Debug, Clone)]
pub struct Node {
    pub netns: String,
    pub args: Vec<String>,
}

impl Node {
    /// `nsenter --net=…` for the namespace: a command prefixed with it runs there.
    pub fn enter(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{}", self.netns));
        c
    }
}

fn need(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install Debian's {package} (apt-get install {package}); the Docker \
         tests need it and do not skip"
    );
}

impl PrivateDaemon {
    pub fn start() -> PrivateDaemon {
        Self::start_node(None)
    }

    /// A daemon of a multi-node test, in `node`'s network namespace (Docker engines only).
    pub fn start_node(node: Option<Node>) -> PrivateDaemon {
        // The engine's own daemon and CLI (Debian 12's docker.io unless PRUNEGATE_TEST_ENGINE
        // names another; engine() fails naming what is missing).
        Self::start_engine(engine(), node)
    }

    /// A daemon of the rootless engine ([`super::engine::rootless`]), run by its unprivileged
    /// uid.
    pub fn start_rootless() -> PrivateDaemon {
        Self::start_engine(super::engine::rootless(), None)
    }

    fn start_engine(engine: &'static TestEngine, node: Option<Node>) -> PrivateDaemon {
        need("/usr/sbin/runc", "runc");
        need(BUSYBOX, "busybox-static");
        assert!(
            nix_is_root(),
            "the Docker tests start their own dockerd and must run as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("pg-")
            .tempdir_in("/tmp")
            .expect("temporary directory");
        let sock = dir.path().join("docker.sock");
        let child = spawn_dockerd(engine, dir.path(), &sock, node.as_ref());
        let host = format!("unix://{}", sock.display());
        let mut d = PrivateDaemon {
            dir,
            sock,
            host,
            engine,
            child,
            mounts: Vec::new(),
            node,
        };
        d.wait_until_answering();
        d
    }

    /// SIGKILLs the daemon (no clean shutdown), waits for it, then starts it again on the same
    /// data root and socket.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its supervised containerd outlives it for a while; a new dockerd cannot start its own
        // until that one is gone.
        let pidfile = self.dir.path().join("exec/containerd/containerd.pid");
        let pid = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|p| *p > 1) {
            unsafe_kill(pid, 9);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // A rootless daemon's processes (rootlesskit's child, dockerd, containerd) are not the
        // child's own: each goes. So do rootless dockerd's pid file and exec root in
        // XDG_RUNTIME_DIR, which a crash leaves behind (a new containerd did not come up beside
        // the old one's state) and a reboot or logout would clear.
        if self.engine.rootless_uid.is_some() {
            kill_all_of(self.dir.path());
            let _ = std::fs::remove_file(self.dir.path().join("engine/xdg/docker.pid"));
            let _ = std::fs::remove_dir_all(self.dir.path().join("engine/xdg/docker"));
        }
        let _ = std::fs::remove_file(&self.sock);
        self.child = spawn_dockerd(self.engine, self.dir.path(), &self.sock, self.node.as_ref());
        self.wait_until_answering();
    }

    fn wait_until_answering(&mut self) {
        let d = self;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if d.sock.exists()
                && d.try_api("GET", "/_ping")
                    .is_ok_and(|(code, _)| code == 200)
            {
                break;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!(
                    "private dockerd exited with {status} before answering:\n{}",
                    d.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "private dockerd did not answer on {} within 60 s:\n{}",
                d.sock.display(),
                d.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn wait_for<F: Fn() -> bool>(&self, what: &str, f: F) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Mounts a tmpfs of `size_mb` at a new directory and fills it to about `fill_percent`.
    pub fn small_fs(&mut self, size_mb: u64, fill_percent: u64) -> PathBuf {
        let dir = self.dir.path().join(format!("fs-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("running mount");
        assert!(
            st.success(),
            "mounting a {size_mb} MB tmpfs at {} failed (needs root)",
            dir.display()
        );
        self.mounts.push(dir.clone());
        let bytes = size_mb * 1024 * 1024 * fill_percent / 100;
        std::fs::write(dir.join("fill"), vec![0x5a_u8; bytes as usize]).unwrap();
        dir
    }
}

/// The test engine's dockerd on `dir`'s data root, exec root, pid file and own config file
/// (never the host's /etc/docker/daemon.json), listening only on `sock`; or Podman's service,
/// with its storage and configuration under `dir`, in a mount namespace of its own; or a rootless
/// engine's start script, likewise (`dir/engine`: the user's HOME and XDG_RUNTIME_DIR).
fn spawn_dockerd(engine: &TestEngine, dir: &Path, sock: &Path, node: Option<&Node>) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dockerd.log"))
        .expect("log file");
    if engine.kind == Kind::Podman || engine.rootless_uid.is_some() {
        return Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(&engine.dockerd)
            .arg(dir.join("engine"))
            .arg(sock)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", engine.dockerd.display()));
    }
    let config = dir.join("daemon.json");
    std::fs::write(&config, engine.daemon_json()).expect("daemon.json");
    let mut command = match node {
        Some(n) => {
            let mut c = n.enter();
            c.arg(&engine.dockerd).args(&n.args);
            c
        }
        None => Command::new(&engine.dockerd),
    };
    command
        .arg("--config-file")
        .arg(&config)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args([
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
            "--ip6tables=false",
        ])
        .env("PATH", engine.daemon_path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", engine.dockerd.display()))
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        // Podman's containers (their conmon monitors) outlive its service: remove them first.
        if self.engine.kind == Kind::Podman {
            let _ = self
                .docker_cmd(&["container", "prune", "-f"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Ok(out) = self.docker_cmd(&["ps", "-aq"]).output() {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = self
                        .docker_cmd(&["rm", "-f", id])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        let pid = self.child.id() as i32;
        unsafe_kill(pid, 15);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Rootless Podman keeps its user namespace alive with a pause process (catatonit -P)
        // that outlives the service (its pid is in the runtime directory), and the service
        // re-executes itself inside that namespace: what is left of either goes too.
        if self.engine.rootless_uid.is_some() {
            let pause = self.dir.path().join("engine/xdg/libpod/tmp/pause.pid");
            if let Some(pid) = std::fs::read_to_string(pause)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .filter(|p| *p > 1)
            {
                unsafe_kill(pid, 9);
            }
            kill_all_of(self.dir.path());
        }
        for m in &self.mounts {
            let _ = Command::new("umount").arg(m).status();
        }
        // Leftover overlay mounts under the data root would make removal fail; unmount them.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let root = self.dir.path().to_string_lossy().to_string();
            let mut points: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(1))
                .filter(|p| p.starts_with(&root))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}

/// SIGKILLs every process whose command line names `dir` (a rootless daemon's: its service,
/// rootlesskit, dockerd, containerd, conmon), and waits until they are gone.
fn kill_all_of(dir: &Path) {
    let mine = dir.to_string_lossy().into_owned();
    let mut killed = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if pid != std::process::id() as i32 && String::from_utf8_lossy(&cmdline).contains(&mine) {
            unsafe_kill(pid, 9);
            killed.push(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while killed
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn unsafe_kill(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

pub fn unique() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
