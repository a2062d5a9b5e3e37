//! A real three-node swarm on one machine: three private dockerds, each in a network namespace
//! of its own joined by veth pairs to a bridge in a fourth namespace (the test's own addresses,
//! 10.77.N.0/24, inside those namespaces only: nothing leaves them, and nothing is added to the
//! host's own network namespace). Node 1 is the manager, its Engine API on TLS with
//! certificates the test makes; nodes 2 and 3 are workers that ask it (`swarm.managers`).
//!
//! One test walks the scenarios in turn on one swarm (building it takes most of the time):
//! a CI stack live on node 3 only, a service that cannot converge, every gate open, the
//! manager's API out of reach, and one node's disk full. It prints a table of what each node
//! decided and the API requests each run made, to the daemon and to the manager.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Network namespaces `<prefix>-sw` (the bridge) and `<prefix>-n1…n3`, removed on drop.
struct Net {
    names: Vec<String>,
    subnet: u8,
}

impl Net {
    fn new(nodes: usize) -> Net {
        for (tool, package) in [
            ("nsenter", "util-linux"),
            ("ip", "iproute2"),
            ("openssl", "openssl"),
        ] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "{tool} is missing: install Debian's {package}; this test needs it"
            );
        }
        let subnet = 20 + (std::process::id() % 200) as u8;
        let prefix = format!("pg{}", std::process::id());
        let sw = format!("{prefix}-sw");
        let mut names = vec![sw.clone()];
        ip(&["netns", "add", &sw]);
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        for k in 1..=nodes {
            let ns = format!("{prefix}-n{k}");
            ip(&["netns", "add", &ns]);
            names.push(ns.clone());
            let port = format!("p{k}");
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"]);
            let addr = format!("10.77.{subnet}.{k}/24");
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        Net { names, subnet }
    }

    fn node(&self, k: usize) -> &str {
        &self.names[k]
    }

    fn addr(&self, k: usize) -> String {
        format!("10.77.{}.{k}", self.subnet)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for `server_ip` and a client certificate, as Docker's "protect
/// the daemon socket" guide makes them. Returns (server dir, client dir in DOCKER_CERT_PATH
/// layout).
fn certificates(dir: &Path, server_ip: &str) -> (PathBuf, PathBuf) {
    let ca = |args: &[&str]| openssl(dir, args);
    ca(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=prunegate test CA",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        format!("subjectAltName=IP:{server_ip}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
        ca(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        ca(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            &format!("{name}-cert.pem"),
            "-days",
            "2",
            "-extfile",
            ext,
        ]);
    }
    let client = dir.join("client");
    std::fs::create_dir_all(&client).unwrap();
    for (from, to) in [
        ("ca.pem", "ca.pem"),
        ("client-cert.pem", "cert.pem"),
        ("client-key.pem", "key.pem"),
    ] {
        std::fs::copy(dir.join(from), client.join(to)).unwrap();
    }
    (dir.to_path_buf(), client)
}

/// `prunegate serve-swarm` running in a node's namespace; stopped when dropped.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server directory for `serve.cert_path`: the CA of the clients it accepts, and its own
/// certificate and key.
fn serve_dir(to: &Path, client_ca: &Path, server_cert: &Path, server_key: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(client_ca, to.join("ca.pem")).unwrap();
    std::fs::copy(server_cert, to.join("cert.pem")).unwrap();
    std::fs::copy(server_key, to.join("key.pem")).unwrap();
    to.to_path_buf()
}

struct Swarm {
    // Dropped first: the server, the daemons, then the namespaces they ran in.
    served: Vec<Served>,
    nodes: Vec<PrivateDaemon>,
    net: Net,
    certs: tempfile::TempDir,
    client: PathBuf,
    manager_api: String,
}

impl Swarm {
    fn start() -> Swarm {
        assert_eq!(
            engine().kind,
            Kind::Docker,
            "swarm mode needs a Docker engine"
        );
        let net = Net::new(3);
        let certs = tempfile::Builder::new()
            .prefix("pg-tls-")
            .tempdir_in("/tmp")
            .unwrap();
        // prunegate's own CA: the manager's serve-swarm certificate and the workers' client
        // certificate. The managers' daemons listen on no TCP port at all.
        let (server, client) = certificates(certs.path(), &net.addr(1));
        let manager_api = format!("tcp://{}:7676", net.addr(1));
        let mut nodes = Vec::new();
        for k in 1..=3 {
            nodes.push(PrivateDaemon::start_node(Some(Node {
                netns: net.node(k).to_string(),
                args: Vec::new(),
            })));
        }
        let manager = &nodes[0];
        let advertise = net.addr(1);
        manager.docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            &advertise,
            "--listen-addr",
            &format!("{advertise}:2377"),
        ]);
        let token = manager.docker(&["swarm", "join-token", "-q", "worker"]);
        for (k, worker) in nodes.iter().enumerate().skip(1) {
            let own = net.addr(k + 1);
            let listen = format!("{own}:2377");
            worker.swarm_join(&token, &own, &listen, &format!("{advertise}:2377"));
        }
        manager.wait_for("three ready nodes", || {
            manager
                .docker(&["node", "ls", "--format", "{{.Status}}"])
                .lines()
                .filter(|l| *l == "Ready")
                .count()
                == 3
        });
        // Nothing can be pulled: every node has the image its tasks run.
        for n in &nodes {
            n.build("pg-base:1", "", "base");
        }
        let mut swarm = Swarm {
            served: Vec::new(),
            nodes,
            net,
            certs,
            client,
            manager_api,
        };
        let dir = serve_dir(
            &swarm.certs.path().join("serve"),
            &server.join("ca.pem"),
            &server.join("server-cert.pem"),
            &server.join("server-key.pem"),
        );
        let served = swarm.serve(7676, &dir);
        swarm.served.push(served);
        swarm
    }

    /// Starts `prunegate serve-swarm` on node 1 (the manager) at `port` with the certificates
    /// in `dir`, and waits until it listens.
    fn serve(&self, port: u16, dir: &Path) -> Served {
        let m = &self.nodes[0];
        let config = m.dir.path().join(format!("serve-{port}.toml"));
        std::fs::write(
            &config,
            format!(
                "[serve]\nlisten = \"{}:{port}\"\ncert_path = \"{}\"\n",
                self.net.addr(1),
                dir.display()
            ),
        )
        .unwrap();
        let log = m.dir.path().join(format!("serve-{port}.log"));
        let mut cmd = m.node.as_ref().unwrap().enter();
        cmd.arg(env!("CARGO_BIN_EXE_prunegate"))
            .args(["serve-swarm", "--config", config.to_str().unwrap()])
            .arg("--docker-host")
            .arg(&m.host)
            .env_remove("DOCKER_HOST")
            .env("PRUNEGATE_LOG", "prunegate=debug")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        let served = Served(cmd.spawn().expect("starting prunegate serve-swarm"));
        m.wait_for(&format!("serve-swarm to listen on {port}"), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("serving the swarm's reads")
        });
        served
    }

    /// A raw request from node `k` to `addr:port` over TLS with the client certificate in
    /// `client` (openssl s_client): the answer's text, or the error.
    fn raw(&self, k: usize, addr: &str, client: &Path, request: &str) -> String {
        let mut child = self.nodes[k - 1]
            .node
            .as_ref()
            .unwrap()
            .enter()
            .args(["openssl", "s_client", "-quiet", "-connect", addr])
            .arg("-cert")
            .arg(client.join("cert.pem"))
            .arg("-key")
            .arg(client.join("key.pem"))
            .arg("-CAfile")
            .arg(client.join("ca.pem"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running openssl s_client");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn node_id(&self, k: usize) -> String {
        self.nodes[k - 1].docker(&["info", "--format", "{{.Swarm.NodeID}}"])
    }

    /// prunegate's config on every node: CI runs are `ci-…`, workers ask `managers`.
    fn config(&self, managers: &[&str], extra: &str) -> String {
        let list: Vec<String> = managers.iter().map(|m| format!("\"{m}\"")).collect();
        format!(
            "[gates.live_runs]\npattern = \"^ci-\"\n[swarm]\nmanagers = [{}]\ncert_path = \"{}\"\n{extra}",
            list.join(", "),
            self.client.display()
        )
    }

    fn wait_service(&self, name: &str, replicas: &str) {
        self.nodes[0].wait_for_replicas(name, replicas);
    }

    fn remove_service(&self, name: &str) {
        let m = &self.nodes[0];
        m.docker(&["service", "rm", name]);
        for n in &self.nodes {
            n.wait_for(&format!("{name}'s containers to go"), || {
                n.docker(&[
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=com.docker.swarm.service.name={name}"),
                ])
                .is_empty()
            });
        }
    }
}

fn gate<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["gates"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["name"] == name))
        .unwrap_or_else(|| panic!("no gate {name} in {report}"))
}

fn calls(report: &Value) -> String {
    let managers: Vec<String> = report["manager_api_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            format!(
                "{} to {}",
                m["api_calls"],
                m["address"].as_str().unwrap_or("")
            )
        })
        .collect();
    let mut text = format!("{} to its daemon", report["api_calls"]);
    for m in managers {
        text.push_str(&format!(", {m}"));
    }
    text
}

#[test]
fn every_node_of_a_three_node_swarm_decides_on_the_managers_view() {
    let s = Swarm::start();
    let open = "[gates.disk]\nused_percent = 1\n[prune]\nolder_than = \"0s\"\n";
    let config = s.config(&[&s.manager_api], open);
    let mut table = vec![
        "| scenario | node | outcome | live_runs | converging | API requests |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    let mut row = |scenario: &str, k: usize, r: &Value| {
        // A run whose configured disk is below the threshold stops there: no other gate.
        let g = |n: &str| {
            let found = r["gates"]
                .as_array()
                .and_then(|g| g.iter().find(|g| g["name"] == n));
            match found.map(|g| g["open"] == true) {
                Some(true) => "open",
                Some(false) => "closed",
                None => "–",
            }
        };
        table.push(format!(
            "| {scenario} | {} | {} | {} | {} | {} |",
            if k == 1 {
                "1 (manager)".to_string()
            } else {
                format!("{k} (worker)")
            },
            r["outcome"].as_str().unwrap_or("?"),
            g("live_runs"),
            g("converging"),
            calls(r)
        ));
    };

    // A CI stack whose only task runs on node 3: every node skips, naming it.
    let n3 = s.node_id(3);
    s.nodes[0].service(
        "ci-7_job",
        &[
            "--label",
            "com.docker.stack.namespace=ci-7",
            "--container-label",
            "com.docker.stack.namespace=ci-7",
            "--constraint",
            &format!("node.id=={n3}"),
            "--env",
            "DB_PASSWORD=hunter2",
        ],
        "pg-base:1",
    );
    s.wait_service("ci-7_job", "1/1");
    assert!(
        s.nodes[1].docker(&["ps", "-q"]).is_empty(),
        "node 2 runs nothing of it"
    );
    for (i, n) in s.nodes.iter().enumerate() {
        let r = n.prunegate(&config, &["check", "--json"]);
        let report = r.json();
        row("ci-7 live on node 3", i + 1, &report);
        let live = gate(&report, "live_runs");
        assert_eq!(live["open"], false, "node {}: {live}", i + 1);
        assert!(live["reason"].as_str().unwrap().contains("ci-7"), "{live}");
        if i == 0 {
            assert!(
                live["evidence"]["swarm_from"].is_null(),
                "the manager reads its own socket"
            );
            assert!(report["manager_api_calls"].is_null(), "{report}");
        } else {
            assert_eq!(
                live["evidence"]["swarm_from"],
                s.manager_api.as_str(),
                "{live}"
            );
            assert!(
                report["manager_api_calls"][0]["api_calls"]
                    .as_u64()
                    .unwrap()
                    >= 3,
                "{report}"
            );
        }
        assert_eq!(r.code, 10, "check with a gate closed");
    }
    workers_key_reads_the_swarm_and_nothing_else(&s);
    s.remove_service("ci-7_job");

    // A service that cannot converge: every node skips.
    s.nodes[0].stuck_service("stuck", "pg-base:1");
    for (i, n) in s.nodes.iter().enumerate() {
        let report = n.prunegate(&config, &["check", "--json"]).json();
        row("a service that cannot converge", i + 1, &report);
        let c = gate(&report, "converging");
        assert_eq!(c["open"], false, "node {}: {c}", i + 1);
        assert!(c["reason"].as_str().unwrap().contains("stuck"), "{c}");
    }
    s.nodes[0].docker(&["service", "rm", "stuck"]);

    // Every gate open: each node prunes its own junk, and only that.
    let junk: Vec<(String, String)> = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let image = n.dangling(&format!("pg-junk{}:1", i + 1));
            let container = n.exited(&format!("exited{}", i + 1), "pg-base:1");
            (image, container)
        })
        .collect();
    settle();
    for (i, n) in s.nodes.iter().enumerate() {
        let r = n.prunegate(&config, &["run", "--json"]);
        let report = r.json();
        row("every gate open", i + 1, &report);
        r.expect(0);
        assert_eq!(report["outcome"], "pruned", "node {}: {report}", i + 1);
        assert!(items(&report, "images").contains(&junk[i].0), "{report}");
        assert_eq!(
            items(&report, "containers"),
            vec![junk[i].1.clone()],
            "{report}"
        );
        for (j, other) in s.nodes.iter().enumerate().skip(i + 1) {
            assert!(
                other.inventory().images.contains(&junk[j].0),
                "node {}'s junk waits for its own run",
                j + 1
            );
        }
    }

    // The manager's API out of reach: workers fail closed naming each address tried; the
    // manager, reading its own socket, still judges.
    let gone = format!("tcp://{}:2376", s.net.addr(9));
    let wrong_port = format!("tcp://{}:2399", s.net.addr(1));
    let unreachable = s.config(
        &[&gone, &wrong_port],
        "[gates.disk]\nused_percent = 1\n[docker]\nread_timeout = \"2s\"\n",
    );
    for (i, n) in s.nodes.iter().enumerate() {
        let report = n.prunegate(&unreachable, &["check", "--json"]).json();
        row("manager API unreachable", i + 1, &report);
        for name in ["live_runs", "converging"] {
            let g = gate(&report, name);
            if i == 0 {
                assert_eq!(g["open"], true, "the manager judges: {g}");
            } else {
                assert_eq!(g["open"], false, "{g}");
                let reason = g["reason"].as_str().unwrap();
                assert!(
                    reason.contains("no swarm manager answered")
                        && reason.contains(&gone)
                        && reason.contains(&wrong_port),
                    "{reason}"
                );
            }
        }
    }
    // Certificates from another CA: the manager refuses the handshake; closed as well.
    let other = tempfile::Builder::new()
        .prefix("pg-tls-")
        .tempdir_in("/tmp")
        .unwrap();
    let (_, other_client) = certificates(other.path(), &s.net.addr(1));
    let untrusted = format!(
        "[gates.live_runs]\npattern = \"^ci-\"\n[swarm]\nmanagers = [\"{}\"]\ncert_path = \"{}\"\n",
        s.manager_api,
        other_client.display()
    );
    let report = s.nodes[1]
        .prunegate(&untrusted, &["check", "--json"])
        .json();
    row("client certificate from another CA", 2, &report);
    assert_eq!(gate(&report, "converging")["open"], false, "{report}");

    // A manager impersonated with a certificate from a second CA, which the worker's
    // SSL_CERT_FILE trusts: only swarm.cert_path's ca.pem counts, so it is refused (bollard's
    // TLS took the system's roots and SSL_CERT_FILE too, and opened the gates).
    let imposter = serve_dir(
        &s.certs.path().join("imposter"),
        &s.client.join("ca.pem"),
        &other.path().join("server-cert.pem"),
        &other.path().join("server-key.pem"),
    );
    let _imposter = s.serve(7677, &imposter);
    let impersonated = s.config(&[&format!("tcp://{}:7677", s.net.addr(1))], "");
    let r = Run::from(
        s.nodes[1]
            .prunegate_cmd(&impersonated, &["check", "--json"])
            .env("SSL_CERT_FILE", other.path().join("ca.pem"))
            .output()
            .unwrap(),
    );
    let report = r.json();
    row("manager impersonated, its CA in SSL_CERT_FILE", 2, &report);
    let c = gate(&report, "converging");
    assert_eq!(c["open"], false, "{report}");
    assert!(
        c["reason"].as_str().unwrap().contains("certificate"),
        "refused for its certificate: {c}"
    );

    // Node 2's disk full, node 3's not: only node 2 prunes.
    let fills = [92, 30];
    let junk: Vec<String> = s.nodes[1..]
        .iter()
        .enumerate()
        .map(|(i, n)| n.dangling(&format!("pg-late{}:1", i + 2)))
        .collect();
    settle();
    let mut outcomes = Vec::new();
    for (i, n) in s.nodes[1..].iter().enumerate() {
        // small_fs needs the daemon mutably; a plain tmpfs made here does the same.
        let fs = n.dir.path().join(format!("disk-{}", fills[i]));
        std::fs::create_dir_all(&fs).unwrap();
        assert!(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(&fs)
            .status()
            .unwrap()
            .success());
        std::fs::write(fs.join("fill"), vec![0u8; 8 * 1024 * 1024 * fills[i] / 100]).unwrap();
        let disk = format!(
            "[gates.disk]\npaths = [\"{}\"]\n[prune]\nolder_than = \"0s\"\n",
            fs.display()
        );
        let r = n.prunegate(&s.config(&[&s.manager_api], &disk), &["run", "--json"]);
        let report = r.json();
        row(&format!("disk {}% full", fills[i]), i + 2, &report);
        outcomes.push(report["outcome"].as_str().unwrap_or("?").to_string());
        let _ = Command::new("umount").arg(&fs).status();
        let still = n.inventory().images.contains(&junk[i]);
        assert_eq!(still, i == 1, "node {}: {report}", i + 2);
    }
    assert_eq!(outcomes, ["pruned", "skipped"]);
    println!("{}", table.join("\n"));

    global_service_prunes_every_node(&s);
}

/// What root on a worker can do with the worker's key (issue 22's high finding): read the
/// swarm's services and tasks without their environment, and nothing else — no container
/// made, no other endpoint, and the managers' daemons are not on the network at all.
fn workers_key_reads_the_swarm_and_nothing_else(s: &Swarm) {
    let serve = format!("{}:7676", s.net.addr(1));
    let create = s.raw(
        2,
        &serve,
        &s.client,
        "POST /containers/create HTTP/1.0\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\n\r\n{}",
    );
    assert!(create.contains(" 405 "), "create refused: {create}");
    for path in [
        "/secrets",
        "/containers/json",
        "/services/ci-7_job",
        "/v1.41/../secrets",
    ] {
        let r = s.raw(
            2,
            &serve,
            &s.client,
            &format!("GET {path} HTTP/1.0\r\n\r\n"),
        );
        assert!(r.contains(" 403 "), "{path} refused: {r}");
    }
    let services = s.raw(2, &serve, &s.client, "GET /services HTTP/1.0\r\n\r\n");
    assert!(
        services.contains(" 200 ") && services.contains("ci-7_job"),
        "{services}"
    );
    assert!(
        !services.contains("hunter2") && !services.contains("DB_PASSWORD"),
        "a service's environment reached a worker: {services}"
    );
    let tasks = s.raw(2, &serve, &s.client, "GET /tasks HTTP/1.0\r\n\r\n");
    assert!(
        tasks.contains(" 200 ") && !tasks.contains("hunter2"),
        "{tasks}"
    );
    let dockerd = s.raw(
        2,
        &format!("{}:2376", s.net.addr(1)),
        &s.client,
        "GET /info HTTP/1.0\r\n\r\n",
    );
    assert!(
        !dockerd.contains(" 200 "),
        "the manager's daemon answered a worker: {dockerd}"
    );
    println!("a worker's key: POST /containers/create 405, /secrets 403, /services without env");
}

/// The image the stack file runs, made here from the test's own prunegate and exactly the
/// libraries `ldd` says it needs (docs/swarm.md builds a static binary instead), FROM scratch;
/// built on the manager and loaded on the workers (nothing is pulled).
fn load_image(s: &Swarm) {
    let ctx = s.nodes[0].dir.path().join("image");
    std::fs::create_dir_all(&ctx).unwrap();
    let binary = env!("CARGO_BIN_EXE_prunegate");
    std::fs::copy(binary, ctx.join("prunegate")).unwrap();
    let ldd = Command::new("ldd")
        .arg(binary)
        .output()
        .expect("running ldd");
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let to = ctx.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lib, &to).unwrap_or_else(|e| panic!("copying {lib}: {e}"));
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY . /\nENTRYPOINT [\"/prunegate\"]\n",
    )
    .unwrap();
    let m = &s.nodes[0];
    m.docker(&[
        "build",
        "-q",
        "-t",
        "prunegate:local",
        ctx.to_str().unwrap(),
    ]);
    let tar = ctx.join("image.tar");
    m.docker(&["save", "-o", tar.to_str().unwrap(), "prunegate:local"]);
    for w in &s.nodes[1..] {
        w.docker(&["load", "-q", "-i", tar.to_str().unwrap()]);
    }
}

/// `docker stack deploy` of deploy/swarm/stack.yml: one task per node, each pruning its own
/// node's junk (the workers asking the manager), within a minute of starting.
fn global_service_prunes_every_node(s: &Swarm) {
    load_image(s);
    let m = &s.nodes[0];
    let base = m.dir.path().join("nodes");
    std::fs::create_dir_all(&base).unwrap();
    // Each node's socket and data root under its node id: the stack file's mount sources are
    // templated with {{.Node.ID}}, which swarm expands per task.
    for (k, n) in s.nodes.iter().enumerate() {
        let id = s.node_id(k + 1);
        std::os::unix::fs::symlink(&n.sock, base.join(format!("{id}.sock"))).unwrap();
        std::os::unix::fs::symlink(n.dir.path().join("data"), base.join(format!("{id}.data")))
            .unwrap();
    }
    // No docker.host: in the task's container prunegate's default socket path is where the
    // stack file mounts this node's own socket.
    let config = base.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[gates.disk]\npaths = [\"/var/lib/docker\"]\nused_percent = 1\n\
             [gates.grace]\nmin_uptime = \"0s\"\n[gates.live_runs]\npattern = \"^ci-\"\n\
             [prune]\nolder_than = \"0s\"\n\
             [swarm]\nmanagers = [\"tcp://{}:7678\"]\ncert_path = \"/run/secrets\"\n\
             [serve]\nlisten = \"0.0.0.0:7678\"\ncert_path = \"/run/secrets\"\n\
             [lock]\npath = \"/var/lib/prunegate/prunegate.lock\"\n[state]\ndir = \"/var/lib/prunegate\"\n\
             [schedule]\ncron = \"*/3 * * * * *\"\n",
            s.net.addr(1)
        ),
    )
    .unwrap();
    let junk: Vec<String> = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| n.dangling(&format!("pg-global{}:1", i + 1)))
        .collect();
    settle();
    let stack = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/swarm/stack.yml");
    let out = m
        .docker_cmd(&["stack", "deploy", "-c", stack.to_str().unwrap(), "pg"])
        .env(
            "PRUNEGATE_DOCKER_SOCKET",
            base.join("{{.Node.ID}}.sock").to_str().unwrap(),
        )
        .env(
            "PRUNEGATE_DATA_ROOT",
            base.join("{{.Node.ID}}.data").to_str().unwrap(),
        )
        .env("PRUNEGATE_CONFIG", config.to_str().unwrap())
        .env("PRUNEGATE_WORKER_TLS", s.client.to_str().unwrap())
        .env(
            "PRUNEGATE_SERVE_TLS",
            s.certs.path().join("serve").to_str().unwrap(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.wait_service("pg_manager", "1/1");
    s.wait_service("pg_serve", "1/1");
    s.wait_service("pg_worker", "2/2");
    for (i, n) in s.nodes.iter().enumerate() {
        n.wait_for(
            &format!("the global service to prune node {}", i + 1),
            || !n.inventory().images.contains(&junk[i]),
        );
    }
    let tasks = m.docker(&[
        "service",
        "ps",
        "--format",
        "{{.Name}} {{.Node}} {{.CurrentState}}",
        "pg_manager",
        "pg_serve",
        "pg_worker",
    ]);
    println!("global service tasks:\n{tasks}");
    m.docker(&["stack", "rm", "pg"]);
}
