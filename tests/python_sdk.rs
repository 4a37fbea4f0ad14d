//! Interop with a client nobody here wrote: the official Python MCP SDK drives the binary
//! (list tools, get_scene_info, execute_blender_code). Skipped where the SDK is not installed
//! (a `SKIPPED <test>: <reason>` line on stderr, counted by `.ci/run`); required in CI (`CI`
//! set), where `.ci/run` installs it.

mod support;

use std::path::PathBuf;

use support::FakeAddon;
use tokio::process::Command;

#[tokio::test]
async fn the_official_python_sdk_lists_and_calls_tools() {
    let probe = Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .await
        .expect("python3");
    let sdk = if probe.status.success() {
        Ok(())
    } else {
        Err("the Python MCP SDK is not installed (pip install mcp)".to_owned())
    };
    if !support::require("the_official_python_sdk_lists_and_calls_tools", sdk) {
        return;
    }
    let fake = FakeAddon::start().await;
    let store = support::TempStore::new();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_sdk_client.py");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        Command::new("python3")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_blender-session-mcp"))
            .arg(fake.port.to_string())
            .arg(&store.path)
            .output(),
    )
    .await
    .expect("the SDK client finishes")
    .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK client failed:\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("report");
    assert_eq!(report["server"], "blender-session-mcp");
    assert_eq!(report["code_text"], "made Cube.001\n");
    assert_eq!(report["failed_is_error"], true);
}
