//! `docker save`-format tarballs made in the test itself: images of any age and any tags,
//! loaded with `docker load`, no registry and no build.

use serde_json::Value;

/// A `docker save`-format tarball of one untagged image created on 2000-01-01.
pub fn old_image_tarball(seed: &str) -> Vec<u8> {
    let data = format!("old image {seed}\n");
    image_tarball(
        &[layer_tar(&[("old.txt", data.as_bytes(), 0o644)])],
        &[TarImage {
            created: "2000-01-01T00:00:00Z".into(),
            tags: Vec::new(),
            layers: vec![0],
            label: seed.into(),
        }],
    )
}

/// One image of a tarball made by [`image_tarball`].
#[derive(Debug, Clone)]
pub struct TarImage {
    /// RFC 3339 `created` of the image config: what `until` compares on the classic store, so
    /// an image can be made as old, or as young, as a test needs.
    pub created: String,
    /// `repo:tag` references; empty for an untagged (dangling) image.
    pub tags: Vec<String>,
    /// Indices into the tarball's layers, bottom first.
    pub layers: Vec<usize>,
    /// A config label that makes the image id unique.
    pub label: String,
}

/// A layer: a tar of `(path, bytes, mode)` files, dated 2000-01-01 so it is reproducible.
pub fn layer_tar(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    for (path, bytes, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(946_684_800);
        header.set_cksum();
        layer.append_data(&mut header, path, *bytes).unwrap();
    }
    layer.into_inner().unwrap()
}

/// A `docker save`-format tarball of `images` over shared `layers`: one `docker load` makes
/// them all, with no registry and no build, each layer stored once.
pub fn image_tarball(layers: &[Vec<u8>], images: &[TarImage]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{:x}", Sha256::digest(l)))
        .collect();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifest = Vec::new();
    for img in images {
        let history: Vec<Value> = img
            .layers
            .iter()
            .map(|_| serde_json::json!({ "created": img.created, "created_by": "prunegate test fixture" }))
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": img.created,
            "config": {
                "Cmd": ["/bin/busybox", "sleep", "3600"],
                "Labels": { "pg.fixture": img.label },
                // busybox as PID 1 ignores SIGTERM: without this, stopping the test daemon
                // waits 10 s for each running container.
                "StopSignal": "SIGKILL"
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": img.layers.iter().map(|&i| diff_ids[i].clone()).collect::<Vec<_>>()
            },
            "history": history
        })
        .to_string();
        let config_name = format!("{:x}.json", Sha256::digest(config.as_bytes()));
        let tags = (!img.tags.is_empty()).then(|| img.tags.clone());
        manifest.push(serde_json::json!({
            "Config": config_name,
            "RepoTags": tags,
            "Layers": img.layers.iter().map(|i| format!("layer{i}/layer.tar")).collect::<Vec<_>>()
        }));
        entries.push((config_name, config.into_bytes()));
    }
    entries.push((
        "manifest.json".into(),
        Value::Array(manifest).to_string().into_bytes(),
    ));
    for (i, layer) in layers.iter().enumerate() {
        entries.push((format!("layer{i}/layer.tar"), layer.clone()));
    }
    let files: Vec<(&str, &[u8], u32)> = entries
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice(), 0o644))
        .collect();
    layer_tar(&files)
}
