//! Interop with the official TypeScript MCP SDK (`@modelcontextprotocol/sdk` 1.x, pinned in
//! `tests/interop/ts/package.json`): `tests/interop/ts/client.mjs` drives the binary against
//! a fake addon through tools (with output-schema validation by the SDK), lenient arguments,
//! resources and subscriptions, prompts, logging, completion, and a 70 s call kept alive by
//! progress notifications under the SDK's default 60 s request timeout (so this test takes
//! over a minute). Skipped where Node or the packages are missing (a `SKIPPED <test>: <reason>`
//! line on stderr, counted by `.ci/run`); required in CI (`CI` set), where `.ci/run` installs
//! them.

mod support;

use std::time::Duration;

use blender_session_mcp::mcp::names;
use serde_json::Value;
use support::FakeAddon;
use tokio::process::Command;

/// The client's whole run: the 70 s call plus everything else, with room on a loaded machine.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_official_typescript_sdk_drives_every_feature() {
    const TEST: &str = "the_official_typescript_sdk_drives_every_feature";
    if !support::require(TEST, support::node::prerequisites()) {
        return;
    }
    let fake = FakeAddon::start().await;
    let store = support::TempStore::new();
    let script = support::node::ts_dir().join("client.mjs");
    let out = tokio::time::timeout(
        CLIENT_TIMEOUT,
        Command::new("node")
            .arg(script)
            .arg(support::BIN)
            .arg(fake.port.to_string())
            .arg(&store.path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("the TypeScript client did not finish within {CLIENT_TIMEOUT:?}"))
    .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
            panic!(
                "the client printed no report ({e}); status {}:\n{stdout}\n{stderr}",
                out.status
            )
        });
    let failures = strings(&report["failures"]);
    assert!(
        failures.is_empty() && out.status.success(),
        "the TypeScript SDK client failed ({}):\n  {}\nreport: {report:#}",
        out.status,
        failures.join("\n  ")
    );

    assert_eq!(report["server"], "blender-session-mcp");
    let checks = &report["checks"];

    // (a) tools, and the output schemas of every structured result in the run.
    let tools = strings(&checks["tools"]["tools"]);
    for name in names::ALL {
        assert!(tools.iter().any(|t| t == name), "tools/list lacks {name}");
    }
    let with_schema = strings(&checks["tools"]["with_output_schema"]);
    for name in strings(&checks["tools"]["returned_structured"]) {
        assert!(
            with_schema.contains(&name),
            "{name} returns structuredContent without an outputSchema"
        );
    }
    assert!(
        !checks["output_schemas"]["validated"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "no structuredContent was validated: {report:#}"
    );

    // (b) lenient arguments; the wrong one names the parameter.
    assert!(checks["lenient"]["history_entries"].as_u64().unwrap() <= 2);
    let wrong = checks["lenient"]["wrong_limit_error"].as_str().unwrap();
    assert!(wrong.contains("limit"), "{wrong}");

    // (c) the long call outlived the 60 s request timeout on progress notifications.
    let long = &checks["long_call"];
    assert!(long["progress"].as_u64().unwrap() >= 10, "{long}");
    assert!(long["seconds"].as_f64().unwrap() >= 70.0, "{long}");

    // (d) resources.
    let resources = &checks["resources"];
    assert!(strings(&resources["resources"]).contains(&"blender://sessions".to_owned()));
    let templates = strings(&resources["templates"]);
    for t in [
        "blender://sessions/{session_id}",
        "blender://sessions/{session_id}/history",
    ] {
        assert!(templates.contains(&t.to_owned()), "{templates:?} lacks {t}");
    }
    assert!(resources["updated"].as_u64().unwrap() >= 1);

    // (e) prompts.
    let prompts = strings(&checks["prompts"]["prompts"]);
    for p in [
        "inspect_scene",
        "build_from_description",
        "explain_last_error",
    ] {
        assert!(prompts.contains(&p.to_owned()), "{prompts:?} lacks {p}");
        assert!(checks["prompts"]["messages"][p].as_u64().unwrap() >= 1);
    }

    // (f) logging.
    assert!(checks["logging"]["messages"].as_u64().unwrap() >= 1);

    // (g) completion.
    assert!(
        checks["completion"]["default_session"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
}
