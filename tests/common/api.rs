//! The tests' own view of the daemon, independent of prunegate: raw HTTP on its socket, the
//! docker CLI pointed at it, and the inventory of everything prunegate could touch.

use super::PrivateDaemon;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output};
use std::time::Duration;

/// One HTTP/1.0 request on the Unix socket `sock`, read to its end: the status (0 when the
/// answer has none) and the body. The tests' own client, and the relay's way to the daemon.
pub fn http10(
    sock: &std::path::Path,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
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

impl PrivateDaemon {
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
        http10(
            &self.sock,
            method,
            path,
            json.as_bytes(),
            Duration::from_secs(60),
        )
    }

    pub fn api(&self, path: &str) -> Value {
        let mut answer = self.try_api("GET", path).expect("API request");
        // Podman 4.3 answers an inspect racing a container's exit with 500 "read
        // /proc/N/cgroup: no such process", and Docker 28.5's containerd store a `/system/df`
        // racing the end of a build with 404 "snapshot …-view does not exist" (both seen in
        // CI): the engines' own races, asked again.
        for _ in 0..3 {
            let (code, body) = &answer;
            let said = String::from_utf8_lossy(body);
            let race = (*code == 500 && said.contains("no such process"))
                || (*code == 404 && said.contains("snapshot") && said.contains("does not exist"));
            if !race {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            answer = self.try_api("GET", path).expect("API request");
        }
        let (code, body) = answer;
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

    /// Runs the test engine's own docker CLI against this daemon; panics with its output if it
    /// fails.
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
            .unwrap_or_else(|e| panic!("running {}: {e}", self.engine.cli.display()))
    }

    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.engine.cli);
        cmd.args(args)
            .env("DOCKER_HOST", &self.host)
            .env(
                "DOCKER_BUILDKIT",
                if self.engine.buildkit() { "1" } else { "0" },
            )
            .env("DOCKER_CLI_HINTS", "false");
        if let Some(config) = self.engine.client_config(self.dir.path()) {
            cmd.env("DOCKER_CONFIG", config);
        }
        cmd
    }

    pub fn container_count(&self) -> usize {
        self.api("/containers/json?all=1").as_array().unwrap().len()
    }

    /// `/system/df` with `verbose=1`, which API 1.52+ needs to list items (older daemons
    /// ignore it).
    pub fn df(&self) -> Value {
        self.api("/system/df?verbose=1")
    }

    /// Ids of everything prunegate could touch, for before/after comparisons.
    /// The inventory once the engine has stopped changing it by itself: two reads a quarter
    /// of a second apart that agree (at most 5 s). BuildKit can still be replacing a build's
    /// records after the CLI returned: once, in CI on Docker 28.5 under load, two of a fresh
    /// build's five records were replaced while a prunegate run whose gate was closed made
    /// only reads, and "a closed gate removes nothing" failed on the engine's own change.
    pub fn settled_inventory(&self) -> Inventory {
        let mut last = self.inventory();
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(250));
            let now = self.inventory();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }

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
        let df = self.df();
        let mut volumes: Vec<String> = df_list(&df, "Volumes")
            .iter()
            .filter_map(|v| v["Name"].as_str().map(str::to_string))
            .collect();
        volumes.sort();
        Inventory {
            containers: ids(self.api("/containers/json?all=1"), "Id"),
            images: ids(self.api("/images/json?all=1"), "Id"),
            build_cache: ids(Value::Array(df_list(&df, "BuildCache")), "ID"),
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

/// One list of a `/system/df` answer in either shape: the legacy `Images`, `Volumes`,
/// `BuildCache` (API 1.41 to 1.52) or the same under `ImageUsage.Items`, `VolumeUsage.Items`,
/// `BuildCacheUsage.Items` (1.52 on; 1.53 drops the legacy ones).
pub fn df_list(df: &Value, legacy: &str) -> Vec<Value> {
    let usage = match legacy {
        "Images" => "ImageUsage",
        "Volumes" => "VolumeUsage",
        "Containers" => "ContainerUsage",
        _ => "BuildCacheUsage",
    };
    df[legacy]
        .as_array()
        .or_else(|| df[usage]["Items"].as_array())
        .cloned()
        .unwrap_or_default()
}
