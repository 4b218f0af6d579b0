//! `lambdock build`'s output, like `sam build`'s: every function's code and every layer in a
//! folder of its own under the build directory (folders copied, `.zip` files unpacked) and a
//! `manifest.json` whose paths are relative to it, so the tree can be moved or shipped whole.

use std::fs;
use std::path::{Path, PathBuf};

use crate::compile::Compiled;
use crate::error::TemplateError;
use crate::manifest::{Code, Manifest};

/// What [`build`] produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The manifest written to `manifest.json`, with absolute paths into the build directory.
    pub manifest: Manifest,
    /// Build steps `sam build` would run that this build did not.
    pub warnings: Vec<String>,
}

/// Folder names never copied from a code folder: build outputs and version control.
const SKIPPED: &[&str] = &[".lambdock", ".aws-sam", ".git"];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TemplateError + '_ {
    move |source| TemplateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the code bundles and `build_dir/manifest.json`.
pub fn build(compiled: &Compiled, build_dir: &Path) -> Result<Built, TemplateError> {
    fs::create_dir_all(build_dir).map_err(io(build_dir))?;
    let build_dir = fs::canonicalize(build_dir).map_err(io(build_dir))?;
    for sub in ["functions", "layers"] {
        let dir = build_dir.join(sub);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
    }
    let mut written = compiled.manifest.clone();
    let mut absolute = compiled.manifest.clone();
    let mut warnings = Vec::new();
    let mut layer_dirs: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (name, f) in &compiled.manifest.functions {
        let Code::Dir(src) = &f.code else { continue };
        let rel = PathBuf::from("functions").join(name);
        unpack(src, &build_dir.join(&rel), &build_dir)?;
        if let Some(method) = compiled.build_methods.get(name) {
            warnings.push(format!(
                "function {name}: BuildMethod {method} is not run; the folder is copied as it is (build it first, e.g. a Rust function's `bootstrap`)"
            ));
        } else if f.runtime.starts_with("python") && src.join("requirements.txt").is_file() {
            warnings.push(format!(
                "function {name}: requirements.txt is not installed; vendor the packages into the code folder or a layer"
            ));
        }
        let mut layers = Vec::new();
        for layer in &f.layers {
            let rel = match layer_dirs.iter().find(|(s, _)| s == layer) {
                Some((_, rel)) => rel.clone(),
                None => {
                    let label = compiled.layer_names.get(layer).cloned().unwrap_or_else(|| {
                        layer
                            .file_stem()
                            .map_or("layer".into(), |s| s.to_string_lossy().into_owned())
                    });
                    let rel = PathBuf::from("layers").join(label);
                    unpack(layer, &build_dir.join(&rel), &build_dir)?;
                    layer_dirs.push((layer.clone(), rel.clone()));
                    rel
                }
            };
            layers.push(rel);
        }
        if let Some(w) = written.functions.get_mut(name) {
            w.code = Code::Dir(rel.clone());
            w.layers = layers.clone();
        }
        if let Some(a) = absolute.functions.get_mut(name) {
            a.code = Code::Dir(build_dir.join(&rel));
            a.layers = layers.iter().map(|l| build_dir.join(l)).collect();
        }
    }
    let path = build_dir.join("manifest.json");
    let text = serde_json::to_vec_pretty(&written).map_err(|e| TemplateError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    fs::write(&path, text).map_err(io(&path))?;
    Ok(Built {
        manifest: absolute,
        warnings,
    })
}

/// Copies a folder or unpacks a `.zip` into `dest`.
fn unpack(src: &Path, dest: &Path, build_dir: &Path) -> Result<(), TemplateError> {
    fs::create_dir_all(dest).map_err(io(dest))?;
    if src.is_dir() {
        return copy_dir(src, dest, build_dir);
    }
    let file = fs::File::open(src).map_err(io(src))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|source| TemplateError::Zip {
        path: src.to_path_buf(),
        source,
    })?;
    // `extract` refuses entries that would land outside `dest` and keeps Unix modes, so a
    // `bootstrap` stays executable.
    archive.extract(dest).map_err(|source| TemplateError::Zip {
        path: src.to_path_buf(),
        source,
    })
}

fn copy_dir(src: &Path, dest: &Path, build_dir: &Path) -> Result<(), TemplateError> {
    for entry in fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let from = entry.path();
        let name = entry.file_name();
        if SKIPPED.iter().any(|s| name == *s) {
            continue;
        }
        // A build directory inside the code folder (`CodeUri: .`) must not copy itself.
        if fs::canonicalize(&from).is_ok_and(|c| c == build_dir) {
            continue;
        }
        let to = dest.join(&name);
        let meta = fs::metadata(&from).map_err(io(&from))?;
        if meta.is_dir() {
            fs::create_dir_all(&to).map_err(io(&to))?;
            copy_dir(&from, &to, build_dir)?;
        } else {
            fs::copy(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::compile::{CompileOptions, compile};

    #[test]
    fn folders_are_copied_zips_unpacked_and_the_manifest_loads() {
        let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates/features");
        let compiled = compile(&case.join("template.yaml"), &CompileOptions::default()).unwrap();
        let out = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            // Twice: a rebuild replaces the previous tree.
            let built = build(&compiled, out.path()).unwrap();
            let root = fs::canonicalize(out.path()).unwrap();
            let zip_fn = &built.manifest.functions["dev-zip"];
            assert_eq!(zip_fn.code, Code::Dir(root.join("functions/dev-zip")));
            assert!(root.join("functions/dev-zip/app.py").is_file());
            let tool = fs::metadata(root.join("functions/dev-zip/bin/tool")).unwrap();
            assert_eq!(tool.permissions().mode() & 0o111, 0o111, "modes kept");
            assert!(root.join("functions/ApiFunction/app.py").is_file());
            assert_eq!(
                built.manifest.functions["ApiFunction"].layers,
                [
                    root.join("layers/lambdock-shared"),
                    root.join("layers/ZipLayer")
                ]
            );
            assert!(root.join("layers/ZipLayer/python/extra.py").is_file());
            assert!(
                root.join("layers/lambdock-shared/python/shared.py")
                    .is_file()
            );
            let loaded = Manifest::load(&root.join("manifest.json")).unwrap();
            assert_eq!(loaded, built.manifest);
        }
    }

    #[test]
    fn a_build_dir_inside_the_code_folder_is_not_copied_into_itself() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("template.yaml"),
            "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: ., Handler: app.h, Runtime: python3.12}\n",
        )
        .unwrap();
        fs::write(dir.path().join("app.py"), "").unwrap();
        fs::write(dir.path().join("requirements.txt"), "requests\n").unwrap();
        fs::create_dir_all(dir.path().join(".git")).unwrap();
        let compiled = compile(
            &dir.path().join("template.yaml"),
            &CompileOptions::default(),
        )
        .unwrap();
        let out = dir.path().join("out/build");
        for _ in 0..2 {
            let built = build(&compiled, &out).unwrap();
            let code = out.join("functions/Fn");
            assert!(code.join("app.py").is_file());
            assert!(
                !code.join("out/build").exists(),
                "build dir copied into itself"
            );
            assert!(!code.join(".git").exists());
            assert_eq!(built.warnings.len(), 1);
            assert!(built.warnings[0].contains("requirements.txt is not installed"));
        }
    }
}
