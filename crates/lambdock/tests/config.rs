//! `lambdock.toml`: options by their environment names, the environment over the file, unknown
//! settings refused.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn target_dir() -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo.join("target"), Into::into)
}

#[test]
fn settings_come_from_lambdock_toml_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port) = (free_port(), free_port());
    // `lambdock agent` needs lambdock-rie to exist; the workspace build makes it.
    let rie = target_dir().join("debug/lambdock-rie");
    std::fs::write(
        dir.path().join("lambdock.toml"),
        format!(
            "agent_listen = \"127.0.0.1:{file_port}\"\nagent_metrics_listen = \"127.0.0.1:{}\"\ndata_dir = \"state\"\nrie = \"{}\"\nlog = \"warn\"\n",
            free_port(),
            rie.display()
        ),
    )
    .unwrap();
    for (env, port) in [
        (None, file_port),
        (Some(format!("127.0.0.1:{env_port}")), env_port),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lambdock"));
        cmd.arg("agent")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        if let Some(v) = &env {
            cmd.env("LAMBDOCK_AGENT_LISTEN", v);
        }
        let mut child = cmd.spawn().unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        let listening = loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break true;
            }
            if Instant::now() > until || child.try_wait().unwrap().is_some() {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            listening,
            "the agent did not listen on {port} (env {env:?})"
        );
    }
    assert!(
        dir.path().join("state/workers").is_dir(),
        "data_dir came from the file"
    );
}

#[test]
fn unknown_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lambdock.toml"),
        "agent_lisen = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lambdock"))
        .arg("version")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lambdock.toml: unknown setting \"agent_lisen\""),
        "{stderr}"
    );
}
