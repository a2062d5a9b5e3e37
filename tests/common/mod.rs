//! A private, throwaway dockerd for each test, and helpers to build fixtures on it.
//!
//! Tests never touch the machine's own daemon: each gets its own data root, exec root, pid file
//! and socket under a fresh temporary directory, with `--bridge=none --iptables=false
//! --ip-masq=false` so it leaves the host's networking alone. Fixtures are built from
//! `/bin/busybox` (Debian's busybox-static) with no registry. If the daemon cannot start, the
//! test fails and says what is missing: these tests never skip.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Debian's docker.io client: it can build with BuildKit (`DOCKER_BUILDKIT=1`).
pub const DOCKER_CLI: &str = "/usr/bin/docker";
pub const BUSYBOX: &str = "/bin/busybox";

/// Swarm-mode daemons share the gossip port 7946: only one may exist at a time.
pub static SWARM_LOCK: Mutex<()> = Mutex::new(());

pub struct PrivateDaemon {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub host: String,
    child: Child,
    mounts: Vec<PathBuf>,
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
        need("/usr/sbin/dockerd", "docker.io");
        need(DOCKER_CLI, "docker.io");
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
        let child = spawn_dockerd(dir.path(), &sock);
        let host = format!("unix://{}", sock.display());
        let mut d = PrivateDaemon {
            dir,
            sock,
            host,
            child,
            mounts: Vec::new(),
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
        let _ = std::fs::remove_file(&self.sock);
        self.child = spawn_dockerd(self.dir.path(), &self.sock);
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

    /// A raw HTTP/1.0 request on the socket: the tests' independent view of the daemon.
    pub fn try_api(&self, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        self.try_api_body(method, path, "")
    }

    pub fn try_api_body(
        &self,
        method: &str,
        path: &str,
        json: &str,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut s = UnixStream::connect(&self.sock)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{json}",
            json.len()
        )?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(buf.len());
        let head = String::from_utf8_lossy(&buf[..split]).to_string();
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((code, buf[(split + 4).min(buf.len())..].to_vec()))
    }

    pub fn api(&self, path: &str) -> Value {
        let (code, body) = self.try_api("GET", path).expect("API request");
        assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("JSON answer")
    }

    /// POSTs JSON to the daemon and returns the decoded answer; panics unless it is a 2xx.
    pub fn api_post(&self, path: &str, json: &str) -> Value {
        let (code, body) = self.try_api_body("POST", path, json).expect("API request");
        assert!(
            (200..300).contains(&code),
            "POST {path}: {code} {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }

    /// Runs Debian's docker CLI against this daemon; panics with its output if it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        let out = self.docker_output(args);
        assert!(
            out.status.success(),
            "docker {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn docker_output(&self, args: &[&str]) -> Output {
        self.docker_cmd(args)
            .output()
            .expect("running /usr/bin/docker")
    }

    fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER_CLI);
        cmd.args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_BUILDKIT", "1")
            .env("DOCKER_CLI_HINTS", "false");
        cmd
    }

    /// Runs `prunegate <command> --json` and checks that gate `name` closed it (exit 10,
    /// outcome `skipped`, reason containing `says`) and that nothing was removed. Returns the
    /// report.
    pub fn expect_closed(&self, config: &str, command: &str, name: &str, says: &str) -> Value {
        let before = self.inventory();
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
    /// Unless the config says otherwise, the run lock lives in this test's directory (tests run
    /// in parallel, each with its own daemon) and the grace period is 0 (the daemon is seconds
    /// old); the lock and grace tests set both themselves.
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
        if !text.contains("[gates.grace]") {
            text.push_str("\n[gates.grace]\nmin_uptime = \"0s\"\n");
        }
        std::fs::write(&config, text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_prunegate"));
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

    /// A base image, a dangling image (its id is returned) and `n` stopped containers: enough
    /// that their prune takes seconds, leaving time to act while it is under way.
    pub fn slow_prune_world(&self, n: usize) -> String {
        self.build("pg-base:1", "", "base");
        let junk = self.dangling("pg-junk:1");
        let create = r#"{"Image":"pg-base:1","HostConfig":{"NetworkMode":"none"}}"#;
        for _ in 0..n {
            self.api_post("/containers/create", create);
        }
        settle();
        junk
    }

    pub fn container_count(&self) -> usize {
        self.api("/containers/json?all=1").as_array().unwrap().len()
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

    /// Runs prunegate against this daemon and waits for it.
    pub fn prunegate(&self, config_toml: &str, args: &[&str]) -> Run {
        Run::from(
            self.prunegate_cmd(config_toml, args)
                .output()
                .expect("running prunegate"),
        )
    }

    /// Builds an image `tag` from a scratch Dockerfile whose build context holds busybox and a
    /// file with `content`, so each distinct content gives a distinct image.
    pub fn build(&self, tag: &str, extra_dockerfile: &str, content: &str) -> String {
        let ctx = self.dir.path().join(format!("ctx-{}", unique()));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::copy(BUSYBOX, ctx.join("busybox")).unwrap();
        std::fs::write(ctx.join("content.txt"), content).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM scratch\nCOPY busybox /bin/busybox\nCOPY content.txt /content.txt\n{extra_dockerfile}\n\
                 CMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n"
            ),
        )
        .unwrap();
        self.build_context(tag, &ctx, true)
    }

    /// `docker build` of a prepared context, with BuildKit or the classic builder (which
    /// records parent images); returns the new image id.
    fn build_context(&self, tag: &str, ctx: &Path, buildkit: bool) -> String {
        let out = self
            .docker_cmd(&[
                "build",
                "-q",
                "--network",
                "none",
                "-t",
                tag,
                ctx.to_str().unwrap(),
            ])
            .env("DOCKER_BUILDKIT", if buildkit { "1" } else { "0" })
            .output()
            .expect("running /usr/bin/docker");
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.image_id(tag)
    }

    pub fn image_id(&self, reference: &str) -> String {
        self.docker(&["image", "inspect", "--format", "{{.Id}}", reference])
    }

    /// Builds `tag` twice with different content: returns the id of the first build, which the
    /// second leaves dangling.
    pub fn dangling(&self, tag: &str) -> String {
        let first = self.build(
            tag,
            "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo one > /run.txt\"]",
            &format!("{tag} one"),
        );
        self.build(
            tag,
            "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo two > /run.txt\"]",
            &format!("{tag} two"),
        );
        first
    }

    /// Builds `tag` twice with the classic builder (which records parent images), changing the
    /// first step: the first build's top image and its intermediate parent are left untagged
    /// and held by nothing. Returns their ids (top, parent).
    pub fn classic_dangling_chain(&self, tag: &str, base: &str) -> (String, String) {
        let ctx = self.dir.path().join(format!("ctx-{}", unique()));
        std::fs::create_dir_all(&ctx).unwrap();
        let build = |first: &str| {
            std::fs::write(
                ctx.join("Dockerfile"),
                format!(
                    "FROM {base}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo {first} > /a\"]\n\
                     RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo b > /b\"]\n"
                ),
            )
            .unwrap();
            self.build_context(tag, &ctx, false)
        };
        let top = build(&format!("{tag} one"));
        let parent = self.docker(&["image", "inspect", "--format", "{{.Parent}}", &top]);
        build(&format!("{tag} two"));
        (top, parent)
    }

    /// Loads an untagged image whose config says it was created on 2000-01-01: a dangling image
    /// that is old on the classic image store whatever the cut-off.
    pub fn load_old_dangling(&self, seed: &str) -> String {
        let tarball = old_image_tarball(seed);
        let path = self.dir.path().join(format!("old-{}.tar", unique()));
        std::fs::write(&path, tarball).unwrap();
        let out = self.docker(&["load", "-i", path.to_str().unwrap()]);
        out.lines()
            .find_map(|l| l.strip_prefix("Loaded image ID: "))
            .unwrap_or_else(|| panic!("docker load said: {out}"))
            .trim()
            .to_string()
    }

    pub fn run_detached(&self, name: &str, image: &str, extra: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        args.extend_from_slice(extra);
        args.push(image);
        self.docker(&args)
    }

    /// A container that has run and exited (with an anonymous volume, which must survive).
    pub fn exited(&self, name: &str, image: &str) -> String {
        self.docker(&[
            "run",
            "--network",
            "none",
            "--name",
            name,
            "-v",
            "/anon",
            image,
            "/bin/busybox",
            "true",
        ]);
        self.container_id(name)
    }

    pub fn created(&self, name: &str, image: &str) -> String {
        self.docker(&["create", "--network", "none", "--name", name, image])
    }

    pub fn container_id(&self, name: &str) -> String {
        self.docker(&["inspect", "--format", "{{.Id}}", name])
    }

    /// Joins this daemon into a single-node swarm on a free loopback port; hold SWARM_LOCK.
    pub fn swarm_init(&self) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        self.docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            "127.0.0.1",
            "--listen-addr",
            &format!("127.0.0.1:{port}"),
        ]);
    }

    /// `docker service create -d --name NAME ARGS… --no-resolve-image IMAGE`: the image is
    /// local, and nothing contacts a registry.
    pub fn service(&self, name: &str, args: &[&str], image: &str) {
        let mut all = vec!["service", "create", "-d", "--name", name];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--no-resolve-image", image]);
        self.docker(&all);
    }

    /// A service swarm can never place (a constraint no node meets): it never converges.
    pub fn stuck_service(&self, name: &str, image: &str) {
        self.service(name, &["--constraint", "node.labels.nonexistent==1"], image);
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

    /// Ids of everything prunegate could touch, for before/after comparisons.
    pub fn inventory(&self) -> Inventory {
        let ids = |v: Value, key: &str| -> Vec<String> {
            let mut out: Vec<String> = v
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|o| o[key].as_str().map(str::to_string))
                .collect();
            out.sort();
            out
        };
        let df = self.api("/system/df");
        let mut volumes: Vec<String> = df["Volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v["Name"].as_str().map(str::to_string))
            .collect();
        volumes.sort();
        Inventory {
            containers: ids(self.api("/containers/json?all=1"), "Id"),
            images: ids(self.api("/images/json?all=1"), "Id"),
            build_cache: ids(df["BuildCache"].clone(), "ID"),
            volumes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub build_cache: Vec<String>,
    pub volumes: Vec<String>,
}

/// dockerd on `dir`'s data root, exec root and pid file, listening only on `sock`.
fn spawn_dockerd(dir: &Path, sock: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dockerd.log"))
        .expect("log file");
    Command::new("/usr/sbin/dockerd")
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
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawning /usr/sbin/dockerd")
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
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

/// A `docker save`-format tarball of one untagged image created on 2000-01-01.
pub fn old_image_tarball(seed: &str) -> Vec<u8> {
    let data = format!("old image {seed}\n");
    image_tarball(
        &[layer_tar(&[("old.txt", data.as_bytes(), 0o644)])],
        &[TarImage {
            created: "2000-01-01T00:00:00Z".into(),
            tags: Vec::new(),
            layers: vec![0],
            label: seed.into(),
        }],
    )
}

/// One image of a tarball made by [`image_tarball`].
#[derive(Debug, Clone)]
pub struct TarImage {
    /// RFC 3339 `created` of the image config: what `until` compares on the classic store, so
    /// an image can be made as old, or as young, as a test needs.
    pub created: String,
    /// `repo:tag` references; empty for an untagged (dangling) image.
    pub tags: Vec<String>,
    /// Indices into the tarball's layers, bottom first.
    pub layers: Vec<usize>,
    /// A config label that makes the image id unique.
    pub label: String,
}

/// A layer: a tar of `(path, bytes, mode)` files, dated 2000-01-01 so it is reproducible.
pub fn layer_tar(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    for (path, bytes, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(946_684_800);
        header.set_cksum();
        layer.append_data(&mut header, path, *bytes).unwrap();
    }
    layer.into_inner().unwrap()
}

/// A `docker save`-format tarball of `images` over shared `layers`: one `docker load` makes
/// them all, with no registry and no build, each layer stored once.
pub fn image_tarball(layers: &[Vec<u8>], images: &[TarImage]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{:x}", Sha256::digest(l)))
        .collect();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifest = Vec::new();
    for img in images {
        let history: Vec<Value> = img
            .layers
            .iter()
            .map(|_| serde_json::json!({ "created": img.created, "created_by": "prunegate test fixture" }))
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": img.created,
            "config": {
                "Cmd": ["/bin/busybox", "sleep", "3600"],
                "Labels": { "pg.fixture": img.label },
                // busybox as PID 1 ignores SIGTERM: without this, stopping the test daemon
                // waits 10 s for each running container.
                "StopSignal": "SIGKILL"
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": img.layers.iter().map(|&i| diff_ids[i].clone()).collect::<Vec<_>>()
            },
            "history": history
        })
        .to_string();
        let config_name = format!("{:x}.json", Sha256::digest(config.as_bytes()));
        let tags = (!img.tags.is_empty()).then(|| img.tags.clone());
        manifest.push(serde_json::json!({
            "Config": config_name,
            "RepoTags": tags,
            "Layers": img.layers.iter().map(|i| format!("layer{i}/layer.tar")).collect::<Vec<_>>()
        }));
        entries.push((config_name, config.into_bytes()));
    }
    entries.push((
        "manifest.json".into(),
        Value::Array(manifest).to_string().into_bytes(),
    ));
    for (i, layer) in layers.iter().enumerate() {
        entries.push((format!("layer{i}/layer.tar"), layer.clone()));
    }
    let files: Vec<(&str, &[u8], u32)> = entries
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice(), 0o644))
        .collect();
    layer_tar(&files)
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
