//! A hostile daemon for the tests: a relay on a Unix socket of its own that passes prunegate's
//! requests to a real private daemon and lets a test rewrite any answer — a message full of
//! escape sequences, an endless listing, an id that is a path. Real answers everywhere else, so
//! prunegate meets the daemon's true shapes plus exactly the hostility the test adds. Every
//! request it saw is kept, for the test to assert on what prunegate sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the relay answers a request with.
pub enum Reply {
    /// The daemon's own answer.
    Pass,
    /// This status and body instead.
    With(u16, Vec<u8>),
    /// The daemon's answer, its body rewritten.
    Rewrite(Box<dyn Fn(Vec<u8>) -> Vec<u8> + Send + Sync>),
    /// `prefix`, then `chunk` for ever (chunked), until prunegate hangs up.
    Endless { prefix: Vec<u8>, chunk: Vec<u8> },
}

/// Chooses the reply to `method` `path` (path and query as sent).
pub type Rule = dyn Fn(&str, &str) -> Reply + Send + Sync;

pub struct Relay {
    pub sock: PathBuf,
    pub host: String,
    seen: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// Relays to the daemon on `upstream` (a socket path), answering as `rule` says.
    pub fn start(
        upstream: PathBuf,
        rule: impl Fn(&str, &str) -> Reply + Send + Sync + 'static,
    ) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("hostile.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule: Arc<Rule> = Arc::new(rule);
        {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    let (rule, seen, upstream) = (rule.clone(), seen.clone(), upstream.clone());
                    std::thread::spawn(move || {
                        let _ = serve(conn, &upstream, &*rule, &seen);
                    });
                }
            });
        }
        Relay {
            host: format!("unix://{}", sock.display()),
            sock,
            seen,
            _dir: dir,
        }
    }

    /// Every request seen so far, as `METHOD path?query`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves the requests of one connection (keep-alive), one at a time.
fn serve(
    conn: UnixStream,
    upstream: &std::path::Path,
    rule: &Rule,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        seen.lock().unwrap().push(format!("{method} {path}"));
        match rule(&method, &path) {
            Reply::Pass => {
                let (status, answer) = forward(upstream, &method, &path, &body)?;
                respond(&mut out, status, &answer)?;
            }
            Reply::With(status, answer) => respond(&mut out, status, &answer)?,
            Reply::Rewrite(f) => {
                let (status, answer) = forward(upstream, &method, &path, &body)?;
                respond(&mut out, status, &f(answer))?;
            }
            Reply::Endless { prefix, chunk } => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Transfer-Encoding: chunked\r\n\r\n"
                )?;
                let mut send = |bytes: &[u8]| -> std::io::Result<()> {
                    write!(out, "{:x}\r\n", bytes.len())?;
                    out.write_all(bytes)?;
                    out.write_all(b"\r\n")
                };
                send(&prefix)?;
                loop {
                    // Ends when prunegate hangs up (a write error).
                    send(&chunk)?;
                }
            }
        }
    }
}

/// The daemon's answer to one request ([`super::http10`]); an answer without a status line
/// is relayed as 502.
fn forward(
    upstream: &std::path::Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let (status, answer) = super::http10(upstream, method, path, body, Duration::from_secs(120))?;
    Ok((if status == 0 { 502 } else { status }, answer))
}

fn respond(out: &mut UnixStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    out.write_all(body)?;
    out.flush()
}
