//! The three prune calls. Each sends explicit filters ([`super::filters`]) so the daemon's
//! defaults can never widen what is removed; none can remove a volume or a tagged image,
//! because none of these endpoints is ever asked to.

use super::containers::Listing;
use super::filters::{build_cache_filters, container_filters, image_filters};
use super::objects;
use super::Daemon;
use crate::engine;
use crate::model::{Candidate, ReadError};
use bollard::models::ImageSummary;
use bollard::query_parameters::{
    ListImagesOptionsBuilder, PruneBuildOptionsBuilder, PruneContainersOptionsBuilder,
    PruneImagesOptionsBuilder,
};
use std::collections::HashMap;

/// What one prune call removed, as the daemon reported it, each object described from a
/// listing read just before the call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruned {
    pub objects: Vec<Candidate>,
    pub reclaimed_bytes: u64,
}

/// Describes each removed id from `known`, in the daemon's order.
fn describe(ids: Vec<String>, mut known: HashMap<String, Candidate>, kind: &str) -> Vec<Candidate> {
    ids.into_iter()
        .map(|id| {
            known
                .remove(&id)
                .unwrap_or_else(|| objects::unknown(id, kind))
        })
        .collect()
}

/// A reclaimed-bytes figure; absent or negative counts as 0.
fn bytes(n: Option<i64>) -> u64 {
    n.unwrap_or(0).max(0) as u64
}

impl Daemon {
    /// Every image, intermediate ones too (`all=1`: parent chains), ids in Docker's form.
    pub async fn all_images(&self) -> Result<Vec<ImageSummary>, ReadError> {
        let opts = ListImagesOptionsBuilder::default().all(true).build();
        self.read
            .list_images(Some(opts))
            .await
            .map(engine::normalized_images)
            .map_err(|e| self.read_err(e))
    }

    /// `POST /containers/prune`: every non-running container created before `until`. The
    /// containers are listed just before, to describe the removed ones in the report and audit.
    pub async fn prune_containers(&self, until: &str) -> Result<Pruned, ReadError> {
        let listed = self
            .containers(Listing {
                all: true,
                ..Listing::default()
            })
            .await?;
        let opts = PruneContainersOptionsBuilder::default()
            .filters(&container_filters(until))
            .build();
        let r = self
            .prune
            .prune_containers(Some(opts))
            .await
            .map_err(|e| self.prune_err(e))?;
        let known = listed
            .iter()
            .map(|c| objects::container(c, false))
            .map(|c| (c.id.clone(), c))
            .collect();
        Ok(Pruned {
            objects: describe(r.containers_deleted.unwrap_or_default(), known, "container"),
            reclaimed_bytes: bytes(r.space_reclaimed),
        })
    }

    /// `POST /images/prune` with `dangling=true`: untagged images no container uses.
    ///
    /// The daemon's answer mixes `Untagged` references, deleted image ids and deleted layer
    /// chain ids (all `sha256:…`), so the images present just before the call are listed first
    /// and only those ids are reported as removed images.
    pub async fn prune_images(&self, until: &str) -> Result<Pruned, ReadError> {
        let images: HashMap<String, Candidate> = self
            .all_images()
            .await?
            .iter()
            .map(|i| (i.id.clone(), objects::image(i)))
            .collect();
        let opts = PruneImagesOptionsBuilder::default()
            .filters(&image_filters(until))
            .build();
        let r = self
            .prune
            .prune_images(Some(opts))
            .await
            .map_err(|e| self.prune_err(e))?;
        let deleted: Vec<String> = r
            .images_deleted
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| item.deleted)
            .map(|id| engine::image_id(&id))
            .filter(|id| images.contains_key(id))
            .collect();
        Ok(Pruned {
            objects: describe(deleted, images, "image"),
            reclaimed_bytes: bytes(r.space_reclaimed),
        })
    }

    /// `POST /build/prune` with `all=false`: unused, unshared build-cache records last used
    /// before `until`. No `label` filter: the CLI path that ignores it would remove everything.
    /// With `describe`, the records are listed first (`/system/df`, which on API 1.41 daemons
    /// also sizes images and volumes: only worth it when an audit log wants the details).
    pub async fn prune_build_cache(
        &self,
        until: &str,
        describe_records: bool,
    ) -> Result<Pruned, ReadError> {
        let known: HashMap<String, Candidate> = if describe_records {
            self.build_cache_records()
                .await?
                .iter()
                .map(|r| (r.id.clone(), objects::build_cache(r)))
                .collect()
        } else {
            HashMap::new()
        };
        let opts = PruneBuildOptionsBuilder::default()
            .all(false)
            .filters(&build_cache_filters(until))
            .build();
        let r = self
            .prune
            .prune_build(Some(opts))
            .await
            .map_err(|e| self.prune_err(e))?;
        Ok(Pruned {
            objects: describe(
                r.caches_deleted.unwrap_or_default(),
                known,
                "build cache record",
            ),
            reclaimed_bytes: bytes(r.space_reclaimed),
        })
    }
}
