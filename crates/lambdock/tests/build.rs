//! `lambdock build`: the real binary on real templates, checking the tree it writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lambdock_template::manifest::{Code, Manifest};

fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lambdock-template/tests")
}

fn lambdock(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lambdock"))
        .args(args)
        .current_dir(cwd)
        .env_remove("LAMBDOCK_REGION")
        .env_remove("LAMBDOCK_ACCOUNT_ID")
        .env_remove("LAMBDOCK_RUNTIMES")
        .output()
        .unwrap()
}

#[test]
fn builds_the_reference_e2e_shape_into_dot_lambdock_build() {
    let dir = tempfile::tempdir().unwrap();
    let template = templates().join("templates/esb-e2e/template.yaml");
    let out = lambdock(dir.path(), &["build", "-t", template.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Functions (3)"), "{stdout}");
    assert!(
        stdout.contains("ServerlessRestApi (Prod)  POST    /api/echo"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ScalingFunctionTick  rate(1 minute)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("e2e-test-table  id HASH  PAY_PER_REQUEST"),
        "{stdout}"
    );
    let build = dir.path().join(".lambdock/build");
    assert!(
        build
            .join("functions/lambda-echo/lambda_function.py")
            .is_file()
    );
    assert!(
        build
            .join("functions/lambda-scaling/lambda_function.py")
            .is_file()
    );
    assert!(
        build
            .join("layers/common-lib-e2e/python/common.py")
            .is_file()
    );
    assert!(
        !build.join("functions/lambda-image").exists(),
        "image functions have no bundle"
    );
    let text = std::fs::read_to_string(build.join("manifest.json")).unwrap();
    assert!(
        text.contains("\"dir\": \"functions/lambda-echo\""),
        "paths are relative: {text}"
    );
    let manifest = Manifest::load(&build.join("manifest.json")).unwrap();
    let build = std::fs::canonicalize(&build).unwrap();
    let echo = &manifest.functions["lambda-echo"];
    assert_eq!(echo.code, Code::Dir(build.join("functions/lambda-echo")));
    assert_eq!(echo.layers, [build.join("layers/common-lib-e2e")]);
    assert_eq!(
        manifest.schedules["ScalingFunctionTick"]
            .qualifier
            .as_deref(),
        Some("live")
    );
}

#[test]
fn parameter_overrides_and_build_dir() {
    let dir = tempfile::tempdir().unwrap();
    let template = templates().join("templates/features/template.yaml");
    let out = lambdock(
        dir.path(),
        &[
            "build",
            "-t",
            template.to_str().unwrap(),
            "--parameter-overrides",
            "Stage=prod",
            "MemoryParam=1024",
            "--build-dir",
            "out",
            "--stack-name",
            "shop",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("warning: resources Lambdock does not run (ignored): Role (AWS::IAM::Role)"),
        "{stderr}"
    );
    let manifest = Manifest::load(&dir.path().join("out/manifest.json")).unwrap();
    assert_eq!(manifest.functions["ApiFunction"].memory_mb, 1024);
    assert!(manifest.functions.contains_key("prod-zip"));
    assert!(manifest.buckets.contains_key("shop-uploads-prod"));
    assert!(dir.path().join("out/functions/prod-zip/app.py").is_file());
}

#[test]
fn bad_templates_exit_non_zero_with_file_and_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (name, expected) in [
        ("yaml-syntax.yaml", "yaml-syntax.yaml:7:14: syntax error"),
        (
            "unknown-intrinsic.yaml",
            "unknown-intrinsic.yaml:7:9: resource Table: unknown or unsupported intrinsic function Fn::Concat",
        ),
        (
            "missing-codeuri.yaml",
            "missing-codeuri.yaml:6:16: resource Fn: CodeUri",
        ),
        (
            "unsupported-runtime.yaml",
            "unsupported-runtime.yaml:9:16: resource Fn: runtime java21 is not supported",
        ),
    ] {
        let template = templates().join("bad").join(name);
        let out = lambdock(dir.path(), &["build", "-t", template.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(
            !dir.path().join(".lambdock").exists(),
            "{name}: wrote a build"
        );
    }
    let out = lambdock(dir.path(), &["build", "-t", "nope.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.yaml"));
}
