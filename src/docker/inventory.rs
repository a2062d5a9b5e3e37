//! The objects a dry run needs to predict a prune: every container with its size, every image
//! (intermediate ones too, to follow parent chains) and every build-cache record. Read only for
//! `--dry-run`: the real run learns what went from the prune answers themselves.

use super::containers::Listing;
use super::Daemon;
use crate::model::{Read, ReadError};
use bollard::models::{ContainerSummary, ImageSummary};
use bollard::query_parameters::ListImagesOptionsBuilder;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inventory {
    pub containers: Read<Vec<ContainerSummary>>,
    pub images: Read<Vec<ImageSummary>>,
    pub build_cache: Read<Vec<BuildCacheRecord>>,
    /// Only where the image prune's `until` applies to the image record's own time (the
    /// containerd image store, [`crate::engine::Engine::image_until_is_record_time`]): the
    /// images `/images/json?all=1` lists with the image prune's own filters (`dangling=true`, the
    /// same `until`), which that store applies exactly as its prune does. `None` elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dangling_until: Option<Read<Vec<ImageSummary>>>,
}

/// One build-cache record: defined beside the one `/system/df` decoder that reads it.
pub use super::usage::BuildCacheRecord;

/// The build-cache records of a `/system/df` answer in either shape (the one decoder:
/// [`super::usage::decode`]); no list at all means no build cache.
pub fn decode_build_cache(body: &[u8]) -> Result<Vec<BuildCacheRecord>, String> {
    Ok(super::usage::decode(body)?.build_cache.unwrap_or_default())
}

impl Daemon {
    /// Every build-cache record, from `/system/df` (raw: bollard 0.21 cannot decode the API
    /// 1.41 shape; see docker/raw.rs).
    pub async fn build_cache_records(&self) -> Result<Vec<BuildCacheRecord>, ReadError> {
        // `verbose=1`: API 1.52+ lists the records only then; older daemons ignore it.
        let body = self
            .raw_get("/system/df?type=build-cache&verbose=1")
            .await?;
        decode_build_cache(&body).map_err(ReadError::local)
    }
}

impl Daemon {
    /// The images the image prune's own filters list (`dangling=true`, `until`), on the
    /// containerd store, which applies them exactly as its prune does. `all`: that store's prune
    /// takes every dangling record, intermediate images of the classic builder included
    /// (checked on Docker 26.1), which the list hides without it.
    pub async fn dangling_until(&self, until: &str) -> Read<Vec<ImageSummary>> {
        let opts = ListImagesOptionsBuilder::default()
            .all(true)
            .filters(&super::filters::image_filters(until))
            .build();
        self.read
            .list_images(Some(opts))
            .await
            .map(crate::engine::normalized_images)
            .map_err(|e| self.read_err(e))
    }
}

impl Inventory {
    /// Three reads, concurrently (four with `dangling_until`, the image prune's `until` value,
    /// given only for the containerd image store). The container list asks for sizes, which
    /// makes the daemon walk each container's writable layer: acceptable for a dry run, which
    /// is why only it does this.
    pub async fn take(
        daemon: &Daemon,
        want_build_cache: bool,
        dangling_until: Option<&str>,
    ) -> Inventory {
        let build_cache = async {
            if !want_build_cache {
                return Ok(Vec::new());
            }
            daemon.build_cache_records().await
        };
        let dangling = async {
            let until = dangling_until?;
            Some(daemon.dangling_until(until).await)
        };
        let (containers, images, build_cache, dangling_until) = tokio::join!(
            daemon.containers(Listing {
                all: true,
                size: true,
                label: None,
            }),
            daemon.all_images(),
            build_cache,
            dangling,
        );
        Inventory {
            containers,
            images,
            build_cache,
            dangling_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_df_shapes() {
        let old = br#"{"LayersSize":0,"BuildCache":[{"ID":"a","Parent":"b","Type":"regular","InUse":false,"Shared":false,"Size":5}]}"#;
        let recs = decode_build_cache(old).unwrap();
        assert_eq!(recs[0].id, "a");
        assert_eq!(recs[0].parent.as_deref(), Some("b"));
        let new = br#"{"BuildCacheUsage":{"Items":[{"ID":"c","Parents":["d"],"Type":"regular","Size":7}]}}"#;
        let recs = decode_build_cache(new).unwrap();
        assert_eq!((recs[0].id.as_str(), recs[0].size), ("c", 7));
        assert!(decode_build_cache(b"{}").unwrap().is_empty());
    }
}
