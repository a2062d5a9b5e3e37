//! Objects made on a private daemon from `/bin/busybox` (Debian's busybox-static), with no
//! registry: images built or loaded, containers in each state, swarm services.

use super::{engine, old_image_tarball, settle, unique, PrivateDaemon, BUSYBOX};
use std::path::Path;

impl PrivateDaemon {
    /// A fresh, empty build-context directory in the daemon's own directory.
    fn new_context(&self) -> std::path::PathBuf {
        let ctx = self.dir.path().join(format!("ctx-{}", unique()));
        std::fs::create_dir_all(&ctx).unwrap();
        ctx
    }

    /// Builds an image `tag` from a scratch Dockerfile whose build context holds busybox and a
    /// file with `content`, so each distinct content gives a distinct image.
    pub fn build(&self, tag: &str, extra_dockerfile: &str, content: &str) -> String {
        let ctx = self.new_context();
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

    /// Builds `tag` on top of the image `base` (its layers a prefix of the new image's), adding
    /// one file with `content`.
    pub fn build_from(&self, tag: &str, base: &str, content: &str) -> String {
        let ctx = self.new_context();
        std::fs::write(ctx.join("app.txt"), content).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM {base}\nCOPY app.txt /app.txt\n"),
        )
        .unwrap();
        self.build_context(tag, &ctx, true)
    }

    /// A multi-stage build, as CI builds Go services: `base` is a build stage only — its
    /// output copied into a scratch image `tag`, no container of it, no layer of it in `tag`.
    /// BuildKit where the engine has it.
    pub fn build_with_stage(&self, tag: &str, base: &str) -> String {
        let ctx = self.new_context();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM {base} AS build\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo {} > /out\"]\n\
                 FROM scratch\nCOPY --from=build /out /out\n",
                unique()
            ),
        )
        .unwrap();
        self.build_context(tag, &ctx, true)
    }

    /// `docker build` of a prepared context, with BuildKit or the classic builder (which
    /// records parent images); returns the new image id.
    pub(super) fn build_context(&self, tag: &str, ctx: &Path, buildkit: bool) -> String {
        let build = || {
            self.docker_cmd(&[
                "build",
                "-q",
                "--network",
                "none",
                "-t",
                tag,
                ctx.to_str().unwrap(),
            ])
            .env(
                "DOCKER_BUILDKIT",
                if buildkit && self.engine.buildkit() {
                    "1"
                } else {
                    "0"
                },
            )
            .output()
            .expect("running the docker CLI")
        };
        let mut out = build();
        // The containerd image store's snapshotter can lose a parent snapshot between two
        // builds ("failed to prepare extraction snapshot … parent snapshot … does not exist",
        // seen in CI on 28.5): the engine's own fault, retried twice, said if it persists.
        for _ in 0..2 {
            let said = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || !said.contains("failed to prepare extraction snapshot") {
                break;
            }
            settle();
            out = build();
        }
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.image_id(tag)
    }

    /// In Docker's form, `sha256:…`, on every engine (Podman's inspect gives the bare hex).
    pub fn image_id(&self, reference: &str) -> String {
        let id = self.docker(&["image", "inspect", "--format", "{{.Id}}", reference]);
        if id.starts_with("sha256:") {
            id
        } else {
            format!("sha256:{id}")
        }
    }

    /// Builds `tag`, then moves `tag` to a second build: returns the id of the first build,
    /// left dangling on either image store (see [`PrivateDaemon::retag`]).
    pub fn dangling(&self, tag: &str) -> String {
        let first = self.build(
            tag,
            "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo one > /run.txt\"]",
            &format!("{tag} one"),
        );
        self.retag(
            tag,
            "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo two > /run.txt\"]",
            &format!("{tag} two"),
        );
        first
    }

    /// Moves `tag` to a new build of `content`, as a deploy moves a tag: the image it named is
    /// left untagged on either image store — the classic store untags it, the containerd store
    /// keeps it as a `moby-dangling@` record made at that moment. (Rebuilding under the same tag
    /// would not do on the containerd store: the old image's record goes with the tag, even
    /// while a container uses it, and only build cache remains.) Returns the new image's id.
    pub fn retag(&self, tag: &str, extra_dockerfile: &str, content: &str) -> String {
        let next = format!("pg-next-{}:1", unique());
        let id = self.build(&next, extra_dockerfile, content);
        self.docker(&["tag", &next, tag]);
        self.docker(&["rmi", &next]);
        id
    }

    /// Builds `tag` twice with the classic builder (which records parent images), changing the
    /// first step: the first build's top image and its intermediate parent are left untagged
    /// and held by nothing. Returns their ids (top, parent).
    pub fn classic_dangling_chain(&self, tag: &str, base: &str) -> (String, String) {
        let ctx = self.new_context();
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
        let parent =
            self.image_id(&self.docker(&["image", "inspect", "--format", "{{.Parent}}", &top]));
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
        // dockerd says "Loaded image ID: sha256:…", Podman "Loaded image: sha256:…".
        out.lines()
            .find_map(|l| {
                l.strip_prefix("Loaded image ID: ").or_else(|| {
                    l.strip_prefix("Loaded image: ")
                        .filter(|id| id.starts_with("sha256:"))
                })
            })
            .unwrap_or_else(|| panic!("docker load said: {out}"))
            .trim()
            .to_string()
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

    pub fn run_detached(&self, name: &str, image: &str, extra: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        args.extend_from_slice(extra);
        args.push(image);
        self.docker(&args)
    }

    /// A container that has run and exited (with an anonymous volume, which must survive).
    /// Started detached and waited for by polling: Podman 4.3's compat API never answers the
    /// docker CLI's attach or `wait` for a container that has already exited.
    pub fn exited(&self, name: &str, image: &str) -> String {
        let id = self.docker(&[
            "run",
            "-d",
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
        self.wait_for(&format!("{name} to exit"), || {
            self.docker(&["inspect", "--format", "{{.State.Running}}", name]) == "false"
        });
        id
    }

    /// `n` containers of `image` created and removed through the API: 2n events.
    pub fn flood(&self, image: &str, n: usize) {
        for _ in 0..n {
            let made = self.api_post(
                "/containers/create",
                &format!("{{\"Image\":\"{image}\",\"Cmd\":[\"/bin/busybox\",\"true\"]}}"),
            );
            let id = made["Id"].as_str().expect("a container id").to_string();
            let (code, _) = self
                .try_api("DELETE", &format!("/containers/{id}"))
                .unwrap();
            assert!(
                (200..300).contains(&code),
                "DELETE /containers/{id}: {code}"
            );
        }
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

    /// `docker swarm join` as a worker with `token`, advertising `advertise` and listening on
    /// `listen` (`ip:port`), to the manager at `manager` (`ip:port`).
    pub fn swarm_join(&self, token: &str, advertise: &str, listen: &str, manager: &str) {
        self.docker(&[
            "swarm",
            "join",
            "--token",
            token,
            "--advertise-addr",
            advertise,
            "--listen-addr",
            listen,
            manager,
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
}
