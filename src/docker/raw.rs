//! A bare GET for the reads bollard cannot decode on every engine.
//!
//! bollard 0.21 models `/system/df` in the API 1.52 shape (`BuildCacheUsage.Items`) and sends
//! requests without a version prefix, so against an older daemon (Debian's 20.10 speaks 1.41 and
//! answers with a top-level `BuildCache` list) its decoded reply is empty. The dry run needs the
//! build-cache records themselves, so it fetches the JSON and decodes either shape itself. The
//! container listings are read the same way (docker/containers.rs: Podman's `stopped` state).

use super::Daemon;
use crate::model::{humanize, ReadError};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::atomic::Ordering;

impl Daemon {
    /// GETs `path_and_query` as it is (`prunegate serve-swarm` passes a worker's allowed read
    /// on): the body of a 2xx answer, or the daemon's error with its status.
    pub async fn get(&self, path_and_query: &str) -> Result<Bytes, ReadError> {
        self.raw_get(path_and_query).await
    }

    /// GETs `path_and_query` from the daemon and returns the body of a 2xx answer.
    pub(super) async fn raw_get(&self, path_and_query: &str) -> Result<Bytes, ReadError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let err = ReadError::local;
        let request = async {
            let get = hyper::Request::get(path_and_query)
                .body(bollard::body_full(Bytes::new()))
                .map_err(|e| err(format!("GET {path_and_query}: {e}")))?;
            let response =
                self.transport.send(get).await.map_err(|e| {
                    err(format!("GET {path_and_query}: {}", super::with_causes(&e)))
                })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| {
                    err(format!(
                        "GET {path_and_query}: reading the answer: {}",
                        super::with_causes(&e)
                    ))
                })?
                .to_bytes();
            if status.is_success() {
                Ok(body)
            } else {
                // The daemon's error body is `{"message": "…"}`; say the message, as bollard does.
                let message = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("message")?.as_str().map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).to_string());
                Err(ReadError::answered(status.as_u16(), &message))
            }
        };
        tokio::time::timeout(self.read_timeout, request)
            .await
            .map_err(|_| {
                err(format!(
                    "GET {path_and_query}: no answer within {}",
                    humanize(self.read_timeout)
                ))
            })?
    }
}

/// What [`Daemon::event_stream`] yields: one event, or why the stream broke.
pub type Event = Result<serde_json::Value, String>;

impl Daemon {
    /// `GET /events?since=…` without `until`: the daemon's buffered events from `since`, then
    /// every new one as it happens, each decoded as JSON (engines stream one object per line).
    /// Ends when the daemon ends it; an error item when the connection or a line fails. Bounded
    /// like every answer: past `docker.max_answer_bytes` on one connection it errs, and the
    /// recorder connects again.
    pub fn event_stream(&self, since: i64) -> impl futures_util::Stream<Item = Event> + '_ {
        use futures_util::stream;
        enum State {
            Start,
            Reading(hyper::body::Incoming, Vec<u8>),
            Done,
        }
        let path = format!("/events?since={since}");
        stream::unfold(State::Start, move |state| {
            let path = path.clone();
            async move {
                let (mut body, mut buf) = match state {
                    State::Done => return None,
                    State::Reading(body, buf) => (body, buf),
                    State::Start => {
                        self.calls.fetch_add(1, Ordering::Relaxed);
                        let get = match hyper::Request::get(path.as_str())
                            .body(bollard::body_full(Bytes::new()))
                        {
                            Ok(g) => g,
                            Err(e) => return Some((Err(e.to_string()), State::Done)),
                        };
                        match self.transport.send(get).await {
                            Ok(r) if r.status().is_success() => (r.into_body(), Vec::new()),
                            Ok(r) => {
                                let status = r.status();
                                return Some((Err(format!("GET /events: {status}")), State::Done));
                            }
                            Err(e) => {
                                let e = format!("GET /events: {}", super::with_causes(&e));
                                return Some((Err(e), State::Done));
                            }
                        }
                    }
                };
                loop {
                    if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let item = serde_json::from_slice(&line)
                            .map_err(|e| format!("decoding an event: {e}"));
                        return Some((item, State::Reading(body, buf)));
                    }
                    match body.frame().await {
                        None => return None,
                        Some(Err(e)) => {
                            let e = format!("reading /events: {}", super::with_causes(&e));
                            return Some((Err(e), State::Done));
                        }
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                buf.extend_from_slice(&data);
                            }
                        }
                    }
                }
            }
        })
    }
}
