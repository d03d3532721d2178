//! Static assets embedded in the binary, served under a path that names their content version
//! (`/ui/assets/<version>/app.css`): a changed file changes the version, so responses can be cached
//! as immutable.

use std::borrow::Cow;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
#[exclude = "*.md"]
struct Assets;

/// One static file.
#[derive(Debug)]
pub struct Asset {
    pub bytes: Cow<'static, [u8]>,
    pub content_type: String,
}

/// A digest of every asset's name and content (12 hex digits).
pub fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        let mut h = Sha256::new();
        for name in names {
            h.update(name.as_bytes());
            if let Some(f) = Assets::get(&name) {
                h.update(f.metadata.sha256_hash());
            }
        }
        hex::encode(&h.finalize()[..6])
    })
}

/// Where the assets of this build are served: `/ui/assets/<version>`.
pub fn asset_prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| format!("/ui/assets/{}", asset_version()))
}

/// The asset at `path` if `version` is this build's (an old version's URL must not be served new
/// content under an immutable cache header).
pub fn asset(version: &str, path: &str) -> Option<Asset> {
    if version != asset_version() {
        return None;
    }
    let f = Assets::get(path)?;
    let mut content_type = f.metadata.mimetype().to_owned();
    if content_type.starts_with("text/") || content_type.ends_with("javascript") {
        content_type.push_str("; charset=utf-8");
    }
    Some(Asset { bytes: f.data, content_type })
}

/// An embedded asset's bytes, whatever the version (for documents that inline their assets).
pub(super) fn embedded(path: &str) -> Option<Cow<'static, [u8]>> {
    Assets::get(path).map(|f| f.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_served_only_under_their_version() {
        let v = asset_version();
        assert_eq!(v.len(), 12);
        let css = asset(v, "app.css").expect("app.css");
        assert_eq!(css.content_type, "text/css; charset=utf-8");
        let chart = asset(v, "vendor/echarts/echarts.min.js").expect("echarts");
        assert!(chart.content_type.contains("javascript"), "{}", chart.content_type);
        assert!(asset(v, "vendor/echarts/LICENSE").is_some());
        assert!(asset("000000000000", "app.css").is_none());
        assert!(asset(v, "vendor/echarts/README.md").is_none());
        assert!(asset(v, "../Cargo.toml").is_none());
    }
}
