//! The `check` command: connect to Blender once through the backend, say what answered
//! (addon and protocol, the scene, the round-trip time) or how to fix the connection.

use std::time::{Duration, Instant};

use crate::backend::{Answer, Backend, BackendError, Link, Operation, Output, SceneInfo};
use crate::mcp::errors::troubleshooting;
use crate::session::RegistryConfig;

/// One operation under the command timeout, with its duration.
async fn ask(
    link: &mut Box<dyn Link>,
    op: &Operation,
    timeout: Duration,
) -> Result<(Answer, Duration), String> {
    let started = Instant::now();
    match tokio::time::timeout(timeout, link.call(op)).await {
        Ok(Ok(answer)) => Ok((answer, started.elapsed())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no reply within {timeout:?}")),
    }
}

/// Run `check` against the Blender `config` names; returns the process exit code.
pub async fn run(config: &RegistryConfig) -> i32 {
    let target = &config.default_target;
    let backend = config.classic_backend();
    println!("Checking Blender at {target} …");
    let started = Instant::now();
    let mut link = match backend.connect(target, config.connect_timeout).await {
        Ok(link) => link,
        Err(e) => {
            eprintln!("✗ {e}\n\n{}", troubleshooting(target));
            return 1;
        }
    };
    println!(
        "✓ connected to {target} in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let timeout = config.command_timeout;
    match ask(&mut link, &Operation::AddonInfo, timeout).await {
        Ok((
            Answer {
                output: Ok(Output::Addon(addon)),
                ..
            },
            _,
        )) => match &addon.info {
            Some(info) => println!(
                "✓ addon: {} {} (protocol {}), Blender {}",
                shown(info, "name"),
                shown(info, "addon_version"),
                addon.protocol_version,
                shown(info, "blender_version"),
            ),
            None => println!("✓ addon: classic BlenderMCP (no get_addon_info; protocol 0)"),
        },
        Ok((answer, _)) => {
            eprintln!("✗ get_addon_info: unexpected answer {:?}", answer.output);
            return 1;
        }
        Err(e) => {
            eprintln!(
                "✗ get_addon_info failed: {e}\n\n{}",
                troubleshooting(target)
            );
            return 1;
        }
    }
    // The addon's own scene summary (the classic command, not this server's scene program).
    let op = Operation::Raw {
        command: "get_scene_info".into(),
        params: None,
    };
    let code = match ask(&mut link, &op, timeout).await {
        Ok((
            Answer {
                output: Ok(Output::Raw(scene)),
                ..
            },
            rtt,
        )) => match serde_json::from_value::<SceneInfo>(scene) {
            Ok(scene) => {
                println!(
                    "✓ scene {:?}: {} object(s), {} material(s)",
                    scene.name, scene.object_count, scene.materials_count
                );
                println!(
                    "✓ round trip (get_scene_info): {:.2} ms",
                    rtt.as_secs_f64() * 1e3
                );
                0
            }
            Err(e) => {
                eprintln!("✗ get_scene_info: the answer is not a scene summary: {e}");
                1
            }
        },
        Ok((
            Answer {
                output: Err(BackendError::Blender { message }),
                ..
            },
            _,
        )) => {
            eprintln!("✗ get_scene_info: Blender reported an error: {message}");
            1
        }
        Ok((answer, _)) => {
            eprintln!("✗ get_scene_info: unexpected answer {:?}", answer.output);
            1
        }
        Err(e) => {
            eprintln!(
                "✗ get_scene_info failed: {e}\n\n{}",
                troubleshooting(target)
            );
            1
        }
    };
    link.close().await;
    code
}

/// A field of a JSON object for display: strings without quotes, `?` when absent.
fn shown(value: &serde_json::Value, key: &str) -> String {
    match value.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}
