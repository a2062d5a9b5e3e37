//! A private registry for the tests: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port with its own storage directory, so fixtures are pulled the way hosts pull
//! them — by tag, by digest, by swarm with `--resolve-image always`. dockerd talks to a
//! 127.0.0.0/8 registry over plain HTTP without `--insecure-registry`. Stopped when dropped.

use super::{unique, PrivateDaemon};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY: &str = "/usr/bin/docker-registry";

pub struct Registry {
    /// `127.0.0.1:PORT`: the prefix of every repository pushed here.
    pub address: String,
    /// A daemon of its own that builds and pushes what the registry serves, as a CI pipeline
    /// elsewhere does: building on the host under test would move the host's own tags (and on
    /// the containerd store a rebuilt tag's old image vanishes outright).
    publisher: PrivateDaemon,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        assert!(
            Path::new(REGISTRY).exists(),
            "{REGISTRY} is missing: install Debian's docker-registry (apt-get install \
             docker-registry; scripts/setup does); the registry tests need it and do not skip"
        );
        let dir = tempfile::Builder::new()
            .prefix("pg-registry-")
            .tempdir_in("/tmp")
            .expect("temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: \
                 {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {REGISTRY}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "the private registry did not listen on {address} within 30 s: {}",
                std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            address,
            publisher: PrivateDaemon::start(),
            child,
            _dir: dir,
        }
    }

    /// Builds `reference` (`REPO:TAG`) with `content` on the publisher and pushes it (moving
    /// the tag upstream when it was pushed before). Returns its digest reference
    /// (`REPO@sha256:…`) as the registry serves it.
    pub fn publish(&self, reference: &str, content: &str) -> String {
        self.publisher.build(reference, "", content);
        self.publisher.docker(&["push", "-q", reference]);
        registry_digest(reference)
    }

    /// `127.0.0.1:PORT/name`.
    pub fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.address)
    }
}

/// `REPO@sha256:…` for `REPO:TAG` (`127.0.0.1:PORT/name:tag`), as the registry serves it
/// (`Docker-Content-Digest` of `GET /v2/NAME/manifests/TAG`): what a pull by digest asks for.
/// Podman's push writes another manifest than the one its image lists, so the daemon's own
/// `RepoDigests` will not do there; the containerd store pushes an index (any of the four
/// manifest types is accepted: a registry answers 404 for a type the client does not take).
pub fn registry_digest(reference: &str) -> String {
    use std::io::{Read, Write};
    let (repo, tag) = reference.rsplit_once(':').expect("REPO:TAG");
    let (address, name) = repo.split_once('/').expect("HOST:PORT/NAME");
    let mut s = std::net::TcpStream::connect(address).expect("connecting to the registry");
    write!(
        s,
        "HEAD /v2/{name}/manifests/{tag} HTTP/1.0\r\nHost: {address}\r\nAccept: \
         application/vnd.docker.distribution.manifest.v2+json, \
         application/vnd.docker.distribution.manifest.list.v2+json, \
         application/vnd.oci.image.manifest.v1+json, \
         application/vnd.oci.image.index.v1+json\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).unwrap();
    let digest = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("the registry has no manifest for {reference}: {head}"));
    format!("{repo}@{digest}")
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrivateDaemon {
    /// The `REPO@sha256:…` reference the daemon recorded for `reference`.
    pub fn digest_of(&self, reference: &str) -> String {
        let out = self.docker(&[
            "image",
            "inspect",
            "--format",
            "{{range .RepoDigests}}{{.}} {{end}}",
            reference,
        ]);
        out.split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("{reference} has no digest: {out:?}"))
            .to_string()
    }

    /// `docker pull -q reference`.
    pub fn pull(&self, reference: &str) {
        self.docker(&["pull", "-q", reference]);
    }

    /// A swarm service from a registry image, pinned by digest as swarm does by default
    /// (`--resolve-image always`), labelled as stack `stack`'s; waits until its task runs.
    /// `extra`: more `service create` options (`--no-resolve-image` for a reference already
    /// pinned).
    pub fn registry_service(&self, name: &str, stack: &str, reference: &str, extra: &[&str]) {
        let label = format!("com.docker.stack.namespace={stack}");
        let mut args = vec![
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--label",
            &label,
            "--container-label",
            &label,
        ];
        args.extend_from_slice(extra);
        args.push(reference);
        self.docker(&args);
        self.wait_for_service(name);
    }

    /// Waits until `name`'s one task runs (its image pulled).
    pub fn wait_for_service(&self, name: &str) {
        self.wait_for_replicas(name, "1/1");
    }

    /// Waits until `docker service ls` shows `name` at `replicas` (`running/desired`).
    pub fn wait_for_replicas(&self, name: &str, replicas: &str) {
        self.wait_for(&format!("service {name} at {replicas}"), || {
            self.docker(&[
                "service",
                "ls",
                "--filter",
                &format!("name={name}"),
                "--format",
                "{{.Replicas}}",
            ]) == replicas
        });
    }

    /// Removes a service and waits until its containers are gone (a stack's teardown).
    pub fn remove_service(&self, name: &str) {
        self.docker(&["service", "rm", name]);
        let filter = format!("label=com.docker.swarm.service.name={name}");
        self.wait_for(&format!("service {name}'s containers to go"), || {
            self.docker(&["ps", "-aq", "--filter", &filter]).is_empty()
        });
    }

    /// The image ids present, each with its tags (`RepoTags`), from `/images/json?all=1`.
    pub fn images_with_tags(&self) -> Vec<(String, Vec<String>)> {
        self.api("/images/json?all=1")
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let id = i["Id"].as_str().unwrap().to_string();
                let id = if id.starts_with("sha256:") {
                    id
                } else {
                    format!("sha256:{id}")
                };
                let tags = i["RepoTags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str())
                    .filter(|t| *t != "<none>:<none>")
                    .map(String::from)
                    .collect();
                (id, tags)
            })
            .collect()
    }

    /// A fresh name for a repository in this test.
    pub fn fresh(&self, name: &str) -> String {
        format!("{name}-{}", unique())
    }
}
