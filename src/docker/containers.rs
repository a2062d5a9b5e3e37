//! `/containers/json`, read raw and decoded here rather than by bollard: Podman 4.3's compat API
//! reports an exited container's `State` as `stopped`, a value bollard's model refuses, so a
//! single exited container made the whole listing fail to decode (every container step failed,
//! and the live-runs gate stayed closed). Each state is first put in Docker's words by
//! [`engine::container_state`]; a state no engine rule knows still fails the read (fail closed).

use super::Daemon;
use crate::engine;
use crate::model::ReadError;
use bollard::models::ContainerSummary;

/// Which containers to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listing<'a> {
    /// Every state, not only running ones (`all=1`).
    pub all: bool,
    /// Sizes of the writable layers (`size=1`): the daemon walks each one.
    pub size: bool,
    /// Only those carrying this label (`filters={"label":[…]}`).
    pub label: Option<&'a str>,
}

impl Listing<'_> {
    fn path(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if self.all {
            query.append_pair("all", "1");
        }
        if self.size {
            query.append_pair("size", "1");
        }
        if let Some(label) = self.label {
            query.append_pair(
                "filters",
                &serde_json::json!({ "label": [label] }).to_string(),
            );
        }
        format!("/containers/json?{}", query.finish())
    }
}

/// Decodes a `/containers/json` answer, states in Docker's words.
pub fn decode(body: &[u8]) -> Result<Vec<ContainerSummary>, String> {
    let mut list: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("decoding /containers/json: {e}"))?;
    for c in &mut list {
        if let Some(state) = c.get_mut("State") {
            if let Some(s) = state.as_str() {
                *state = serde_json::Value::String(engine::container_state(s).to_string());
            }
        }
    }
    serde_json::from_value(serde_json::Value::Array(list))
        .map_err(|e| format!("decoding /containers/json: {e}"))
}

impl Daemon {
    /// One `/containers/json` request.
    pub async fn containers(
        &self,
        listing: Listing<'_>,
    ) -> Result<Vec<ContainerSummary>, ReadError> {
        let body = self.raw_get(&listing.path()).await?;
        decode(&body).map_err(ReadError::local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerSummaryStateEnum as S;

    #[test]
    fn podmans_stopped_is_exited_and_unknown_states_fail() {
        let body =
            br#"[{"Id":"a","Names":["/e2"],"State":"stopped","Status":"Exited (0) 25 seconds ago"},
                        {"Id":"b","Names":["/r1"],"State":"running"}]"#;
        let list = decode(body).unwrap();
        assert_eq!(list[0].state, Some(S::EXITED));
        assert_eq!(list[1].state, Some(S::RUNNING));
        assert!(decode(br#"[{"Id":"c","State":"hibernating"}]"#).is_err());
    }

    #[test]
    fn the_query_carries_the_label_filter() {
        let path = Listing {
            all: true,
            size: false,
            label: Some("com.docker.compose.project"),
        }
        .path();
        assert_eq!(
            path,
            "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22com.docker.compose.project%22%5D%7D"
        );
    }
}
