//! A bare GET for the one read bollard cannot decode here.
//!
//! bollard 0.21 models `/system/df` in the API 1.52 shape (`BuildCacheUsage.Items`) and sends
//! requests without a version prefix, so against an older daemon (Debian's 20.10 speaks 1.41 and
//! answers with a top-level `BuildCache` list) its decoded reply is empty. The dry run needs the
//! build-cache records themselves, so it fetches the JSON and decodes either shape itself.

use super::{Daemon, ReadError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::Ordering;

impl Daemon {
    /// GETs `path_and_query` from the daemon and returns the body of a 2xx answer.
    pub(super) async fn raw_get(&self, path_and_query: &str) -> Result<Bytes, ReadError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let err = |message: String| ReadError {
            status: None,
            message,
        };
        let (scheme, rest) = self
            .host
            .split_once("://")
            .ok_or_else(|| err(format!("bad host {}", self.host)))?;
        let request = async {
            let response = if scheme == "unix" {
                let uri: hyper::Uri = hyperlocal::Uri::new(rest, path_and_query).into();
                let client: Client<_, Full<Bytes>> =
                    Client::builder(TokioExecutor::new()).build(hyperlocal::UnixConnector);
                client.get(uri).await
            } else {
                let authority = rest.split('/').next().unwrap_or(rest);
                let uri: hyper::Uri = format!("http://{authority}{path_and_query}")
                    .parse()
                    .map_err(|e| err(format!("bad address {}: {e}", self.host)))?;
                let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                    .build(hyper_util::client::legacy::connect::HttpConnector::new());
                client.get(uri).await
            }
            .map_err(|e| err(format!("GET {path_and_query}: {e}")))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| err(format!("GET {path_and_query}: reading the answer: {e}")))?
                .to_bytes();
            if status.is_success() {
                Ok(body)
            } else {
                Err(ReadError {
                    status: Some(status.as_u16()),
                    message: String::from_utf8_lossy(&body).trim().to_string(),
                })
            }
        };
        tokio::time::timeout(self.read_timeout, request)
            .await
            .map_err(|_| {
                err(format!(
                    "GET {path_and_query}: no answer within {}",
                    super::humanize(self.read_timeout)
                ))
            })?
    }
}
