//! The real Blender the side-by-side run measures: headless Blender (`blender -b`) running
//! the unmodified classic addon through `addon_shim.py` when `BENCH_ADDON_PY` names its
//! `addon.py`, else this project's own headless server (the bench says which); scenes of N
//! objects built in it; bare socket round trips to it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use blender_session_mcp::backend::Target;
use blender_session_mcp::backend::classic::protocol::encode_request;
use blender_session_mcp::headless::{
    HeadlessBlender, HeadlessOptions, Launcher, find_blender, port_answers,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The shim that runs the unmodified addon in background mode (our code, not the addon's).
const ADDON_SHIM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/blender_bench/addon_shim.py"
);

/// A running Blender for the bench, stopped when dropped.
pub(crate) struct BenchBlender {
    pub(crate) port: u16,
    /// What serves the socket, for the report.
    pub(crate) serving: String,
    pub(crate) version: String,
    _process: Process,
}

/// Held only: dropping it stops Blender.
#[allow(dead_code)]
enum Process {
    Headless(HeadlessBlender),
    Shim(tokio::process::Child),
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

impl BenchBlender {
    /// Start Debian's (or `$BLENDER_PATH`'s) Blender in background mode with the unmodified
    /// addon (`BENCH_ADDON_PY`) or our headless server.
    pub(crate) async fn start() -> Result<BenchBlender, String> {
        let blender = find_blender(None).map_err(|e| e.to_string())?;
        let port = free_port()?;
        let addon = std::env::var("BENCH_ADDON_PY")
            .ok()
            .filter(|p| !p.is_empty());
        let (process, serving) = match addon {
            Some(addon) => {
                if !std::path::Path::new(&addon).is_file() {
                    return Err(format!("BENCH_ADDON_PY={addon} is not a file"));
                }
                let child = tokio::process::Command::new(&blender)
                    .args(["-b", "--python", ADDON_SHIM, "--", "--addon", &addon])
                    .args(["--port", &port.to_string()])
                    .args(["--parent-pid", &std::process::id().to_string()])
                    .stdin(Stdio::null())
                    // The addon prints a line per command: it must never block on a pipe.
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| format!("cannot start {}: {e}", blender.display()))?;
                let target = Target::new("127.0.0.1", port);
                let deadline = Instant::now() + Duration::from_secs(120);
                while !port_answers(&target).await {
                    if Instant::now() > deadline {
                        return Err("the addon shim did not listen within 120 s".into());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (
                    Process::Shim(child),
                    format!("the unmodified classic addon ({addon}) through addon_shim.py"),
                )
            }
            None => {
                let headless = HeadlessBlender::start(&HeadlessOptions {
                    launcher: Launcher::Blender(blender.clone()),
                    host: "127.0.0.1".into(),
                    port,
                    blend_file: None,
                    startup_timeout: Duration::from_secs(120),
                })
                .await
                .map_err(|e| e.to_string())?;
                (
                    Process::Headless(headless),
                    "this project's headless server (BENCH_ADDON_PY not set: NOT the classic addon)"
                        .to_owned(),
                )
            }
        };
        let mut bench = BenchBlender {
            port,
            serving,
            version: String::new(),
            _process: process,
        };
        let out = bench
            .exec("import bpy\nprint(bpy.app.version_string)")
            .await?;
        bench.version = out.trim().to_owned();
        Ok(bench)
    }

    /// Run `code` through a bare socket; returns its stdout.
    pub(crate) async fn exec(&self, code: &str) -> Result<String, String> {
        let request = encode_request("execute_code", Some(&json!({"code": code})), usize::MAX)
            .map_err(|e| e.to_string())?;
        let reply: Value = serde_json::from_slice(&bare_once(self.port, &request).await?)
            .map_err(|e| e.to_string())?;
        match reply["status"].as_str() {
            Some("success") => Ok(reply["result"]["result"].as_str().unwrap_or("").to_owned()),
            _ => Err(format!("execute_code failed: {reply}")),
        }
    }

    /// Grow the scene to `objects` objects (it starts with Blender's 3): new objects share
    /// one mesh, all linked to the scene collection, then one `view_layer.update()`.
    pub(crate) async fn grow_scene(&self, objects: usize) -> Result<Duration, String> {
        let t0 = Instant::now();
        let code = format!(
            "import bpy\nscene = bpy.context.scene\nwant = {objects}\n\
             mesh = bpy.data.meshes.get('bench') or bpy.data.meshes.new('bench')\n\
             have = len(scene.objects)\nlink = scene.collection.objects.link\n\
             new = bpy.data.objects.new\n\
             for i in range(have, want):\n    link(new('bench.%06d' % i, mesh))\n\
             bpy.context.view_layer.update()\nprint(len(scene.objects))"
        );
        let out = self.exec(&code).await?;
        if out.trim() != objects.to_string() {
            return Err(format!(
                "the scene has {} objects, not {objects}",
                out.trim()
            ));
        }
        Ok(t0.elapsed())
    }
}

/// One bare request on a fresh connection; returns the reply's bytes.
pub(crate) async fn bare_once(port: u16, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    sock.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("Blender closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if serde_json::from_slice::<serde::de::IgnoredAny>(&buf).is_ok() {
            return Ok(buf);
        }
    }
}
