//! Golden tests: every template under `tests/templates/<case>/` (`template.yaml` or
//! `template.json`, optional `overrides` with `Key=Value` lines) compiles to the manifest and
//! warnings in `<case>/expected.json`. Paths are written relative to the case folder.
//! `UPDATE_GOLDEN=1 cargo nextest run -p lambdock-template --test golden` rewrites the
//! expected files; review the diff before committing.
//!
//! Bad templates under `tests/bad/*.yaml` start with `# expect: <text>`; compiling them must
//! fail with an error containing that text (which names file and line).

use std::path::{Path, PathBuf};

use lambdock_template::{CompileOptions, compile, parse_overrides};

fn cases(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn options(case: &Path) -> CompileOptions {
    let overrides = std::fs::read_to_string(case.join("overrides")).unwrap_or_default();
    let words: Vec<&str> = overrides.lines().filter(|l| !l.trim().is_empty()).collect();
    CompileOptions {
        parameter_overrides: parse_overrides(&words).unwrap(),
        region: "eu-west-1".into(),
        account_id: "111122223333".into(),
        stack_name: "golden".into(),
        ..CompileOptions::default()
    }
}

#[test]
fn templates_compile_to_their_golden_manifests() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let cases = cases("templates");
    assert!(cases.len() >= 5, "golden cases missing");
    for case in cases {
        let template = ["template.yaml", "template.json"]
            .iter()
            .map(|f| case.join(f))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{}: no template", case.display()));
        let compiled = compile(&template, &options(&case))
            .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let actual = serde_json::json!({
            "manifest": compiled.manifest,
            "warnings": compiled.warnings,
            "build_methods": compiled.build_methods,
        });
        let prefix = format!("{}/", std::path::absolute(&case).unwrap().display());
        let actual = serde_json::to_string_pretty(&actual)
            .unwrap()
            .replace(&prefix, "")
            + "\n";
        let expected_path = case.join("expected.json");
        if update {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        assert_eq!(
            actual,
            expected,
            "{} differs from {}",
            case.display(),
            expected_path.display()
        );
    }
}

#[test]
fn bad_templates_fail_with_file_and_line() {
    let cases = cases("bad");
    assert!(cases.len() >= 4, "bad cases missing");
    for case in cases {
        let text = std::fs::read_to_string(&case).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: no # expect: line", case.display()));
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let err = compile(&case, &CompileOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{name} compiled"))
            .to_string();
        assert!(err.contains(&format!("{name}:")), "{name}: {err}");
        assert!(
            err.contains(expected),
            "{name}: expected {expected:?} in {err:?}"
        );
    }
}
