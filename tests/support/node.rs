//! The Node.js side of the interop tests: the official TypeScript SDK and the MCP Inspector,
//! pinned in `tests/interop/ts/package.json` (+ its lock) and installed by
//! `npm ci --prefix tests/interop/ts` (`.ci/run` does it).

use std::path::PathBuf;

use serde_json::Value;

/// `tests/interop/ts`.
pub fn ts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ts")
}

/// The oldest Node the pinned packages support.
pub const MIN_NODE_MAJOR: u64 = 20;

const INSTALL: &str = "npm ci --prefix tests/interop/ts";

/// `Ok` when `node` (>= [`MIN_NODE_MAJOR`]) runs and every dependency pinned in
/// `tests/interop/ts/package.json` is installed in its `node_modules` at the pinned version;
/// otherwise the reason, for [`super::require`].
pub fn prerequisites() -> Result<(), String> {
    let out = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node is not installed ({e}); Node {MIN_NODE_MAJOR}+ is needed"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok());
    match major {
        Some(m) if m >= MIN_NODE_MAJOR => {}
        _ => {
            return Err(format!(
                "node {version:?} is too old or unrecognized; Node {MIN_NODE_MAJOR}+ is needed"
            ));
        }
    }
    let manifest = read_json(&ts_dir().join("package.json"))?;
    let deps = manifest["dependencies"]
        .as_object()
        .ok_or("tests/interop/ts/package.json has no dependencies")?;
    for (name, pinned) in deps {
        let installed = ts_dir()
            .join("node_modules")
            .join(name)
            .join("package.json");
        let installed = read_json(&installed)
            .map_err(|_| format!("{name} is not installed (run `{INSTALL}`)"))?;
        if installed["version"] != *pinned {
            return Err(format!(
                "{name} {} is installed but {pinned} is pinned (run `{INSTALL}`)",
                installed["version"]
            ));
        }
    }
    Ok(())
}

fn read_json(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
