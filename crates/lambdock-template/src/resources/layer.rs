//! `AWS::Serverless::LayerVersion` (`ContentUri`) and `AWS::Lambda::LayerVersion` (`Content`
//! as a local path, the form `aws cloudformation package` takes), plus the local-path rule
//! shared with function code: a folder or a `.zip`, relative to the template.

use std::path::{Path, PathBuf};

use super::{Props, R, to_string};
use crate::yaml::Node;

/// A local code location: a folder or a `.zip` file, which must exist.
pub(crate) fn local_path(p: &Props<'_, '_>, base: &Path, node: &Node, key: &str) -> R<PathBuf> {
    if node.as_map().is_some() {
        return Err(p.ctx.err(
            node.pos,
            format!("{key}: S3 locations are not supported; give a local folder or .zip"),
        ));
    }
    let text = to_string(p.ctx, node)?;
    let path = base.join(&text);
    let is_zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if path.is_dir() || (is_zip && path.is_file()) {
        Ok(std::path::absolute(&path).unwrap_or(path))
    } else {
        Err(p.ctx.err(
            node.pos,
            format!(
                "{key} {text:?}: no such folder or .zip file ({})",
                path.display()
            ),
        ))
    }
}

/// Compiles a layer: its content's path.
pub(crate) fn compile(p: &Props<'_, '_>, base: &Path, ty: &str) -> R<PathBuf> {
    let key = if ty == "AWS::Serverless::LayerVersion" {
        "ContentUri"
    } else {
        "Content"
    };
    let content = p
        .get(key)?
        .ok_or_else(|| p.ctx.err(p.pos, format!("{key} is required")))?;
    let path = local_path(p, base, &content, key)?;
    p.raw("LayerName");
    p.raw("CompatibleRuntimes");
    p.raw("CompatibleArchitectures");
    p.raw("Description");
    p.raw("RetentionPolicy");
    p.raw("LicenseInfo");
    p.warn_ignored(ty);
    Ok(path)
}
