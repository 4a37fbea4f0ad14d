//! Interop with the MCP Inspector's CLI mode (`@modelcontextprotocol/inspector`, pinned in
//! `tests/interop/ts/package.json`, run from its `node_modules/.bin`, never a global `npx`
//! download): each test has it spawn the binary against a fake addon, make one request and
//! print the JSON result. Skipped where Node or the package is missing (a
//! `SKIPPED <test>: <reason>` line on stderr, counted by `.ci/run`); required in CI (`CI`
//! set), where `.ci/run` installs it.

mod support;

use std::time::Duration;

use blender_session_mcp::mcp::names;
use serde_json::Value;
use support::FakeAddon;
use tokio::process::Command;

const INSPECTOR_TIMEOUT: Duration = Duration::from_secs(90);

/// Run `mcp-inspector --cli <bin> serve --blender-port <fake> --method <method> <extra..>`;
/// it must exit 0 and print one JSON document. `None` when the prerequisites are missing
/// (reported by [`support::require`]).
async fn inspector(test: &str, method: &str, extra: &[&str]) -> Option<Value> {
    if !support::require(test, support::node::prerequisites()) {
        return None;
    }
    let fake = FakeAddon::start().await;
    let bin = support::node::ts_dir().join("node_modules/.bin/mcp-inspector");
    let port = fake.port.to_string();
    let store = support::TempStore::new();
    let out = tokio::time::timeout(
        INSPECTOR_TIMEOUT,
        Command::new(&bin)
            .arg("--cli")
            .args([support::BIN, "serve", "--blender-port", &port])
            .args(["--store-path", &store.path])
            .args(["--method", method])
            .args(extra)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| {
        panic!("the Inspector did not finish {method} within {INSPECTOR_TIMEOUT:?}")
    })
    .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Inspector's {method} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("the Inspector's {method} printed no JSON ({e}):\n{stdout}\n{stderr}")
    });
    Some(json)
}

fn names_of(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .filter_map(|item| item[field].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_inspector_lists_tools() {
    let Some(out) = inspector("the_inspector_lists_tools", "tools/list", &[]).await else {
        return;
    };
    let tools = names_of(&out["tools"], "name");
    for name in names::ALL {
        assert!(tools.iter().any(|t| t == name), "{tools:?} lacks {name}");
    }
}

#[tokio::test]
async fn the_inspector_lists_resources() {
    let Some(out) = inspector("the_inspector_lists_resources", "resources/list", &[]).await else {
        return;
    };
    let uris = names_of(&out["resources"], "uri");
    assert!(
        uris.iter().any(|u| u == "blender://sessions"),
        "{uris:?} lacks blender://sessions"
    );
}

#[tokio::test]
async fn the_inspector_lists_prompts() {
    let Some(out) = inspector("the_inspector_lists_prompts", "prompts/list", &[]).await else {
        return;
    };
    let prompts = names_of(&out["prompts"], "name");
    for p in [
        "inspect_scene",
        "build_from_description",
        "explain_last_error",
    ] {
        assert!(prompts.iter().any(|n| n == p), "{prompts:?} lacks {p}");
    }
}

/// Call get_session_history with `--tool-arg ARG`: a session's history of at most 2 entries.
async fn history_with(test: &str, arg: &str) {
    let Some(out) = inspector(
        test,
        "tools/call",
        &["--tool-name", names::GET_SESSION_HISTORY, "--tool-arg", arg],
    )
    .await
    else {
        return;
    };
    assert!(out["isError"] != true, "the call failed: {out:#}");
    let history = &out["structuredContent"];
    assert!(
        history["session_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{out:#}"
    );
    let entries = history["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {out:#}"));
    assert!(entries.len() <= 2, "{out:#}");
}

/// The Inspector (0.17) parses a `--tool-arg` value as JSON when it can: `limit="2"` is the
/// string `"2"`, what clients that send every argument as a string do (the lenient
/// arguments).
#[tokio::test]
async fn the_inspector_calls_a_tool_with_a_string_argument() {
    history_with(
        "the_inspector_calls_a_tool_with_a_string_argument",
        r#"limit="2""#,
    )
    .await;
}

/// `limit=2` is the number 2.
#[tokio::test]
async fn the_inspector_calls_a_tool_with_a_number_argument() {
    history_with(
        "the_inspector_calls_a_tool_with_a_number_argument",
        "limit=2",
    )
    .await;
}
