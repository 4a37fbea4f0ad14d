//! The design's "hello cube" demo: the whole chain in one command, printed in the design's
//! log format (`[YYYY-MM-DD HH:MM:SS] message`).

use std::time::Duration;

use crate::headless::{HeadlessError, SpawnConfig, ensure_running};
use crate::mcp::errors::error_text;
use crate::mcp::names;
use crate::session::{Call, Registry, RegistryConfig};

const HELLO_CUBE: &str = "\
bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
cube = bpy.context.active_object
cube.name = 'HelloCube'
print(f'Created {cube.name} at {tuple(round(v, 2) for v in cube.location)}')
";

/// Run the demo against the Blender `registry` names (starting a headless one with `spawn`
/// when nothing listens there); returns the process exit code.
pub async fn run(registry: RegistryConfig, spawn: &SpawnConfig) -> i32 {
    let target = registry.default_target.clone();
    let started = match ensure_running(&target, || spawn.options(&target)).await {
        Ok(started) => started,
        Err(e @ HeadlessError::NotFound { .. }) => {
            eprintln!(
                "✗ Nothing answers on {target} and Blender is not installed, so the demo cannot start one.\n  {e}\n  Or start Blender with the BlenderMCP addon (\"Connect to MCP server\") and run the demo again."
            );
            return 1;
        }
        Err(e) => {
            eprintln!("✗ {e}");
            return 1;
        }
    };
    let code = hello_cube(registry).await;
    if let Some(blender) = started {
        tracing::info!("stopping the headless Blender this demo started");
        if let Err(e) = blender.stop(Duration::from_secs(10)).await {
            eprintln!("✗ could not stop Blender: {e}");
        }
    }
    code
}

async fn hello_cube(config: RegistryConfig) -> i32 {
    let registry = Registry::new(config);
    let result = async {
        let id = registry.create_session(None).await?;
        let out = registry
            .execute_code(&id, HELLO_CUBE, &Call::new(names::EXECUTE_BLENDER_CODE))
            .await?;
        print!("{out}", out = out.stdout);
        let scene = registry
            .scene_info(&id, &Call::new(names::GET_SCENE_INFO))
            .await?;
        println!("\nScene {:?}:", scene.name);
        for obj in &scene.objects {
            println!("  {:<12} {:<8} {:?}", obj.name, obj.kind, obj.location);
        }
        let info = registry.get_session_info(&id).await?;
        println!("\nSession info:");
        println!(
            "{}",
            serde_json::to_string_pretty(&info).unwrap_or_default()
        );
        println!("\nHistory:");
        for entry in registry.get_session_history(&id, None).await?.entries {
            println!(
                "  {} ({}): {} ({:.3}s)",
                entry.command,
                entry.tool,
                entry.outcome.as_str(),
                entry.duration
            );
        }
        println!();
        registry.close_session(&id).await?;
        let has_cube = scene.objects.iter().any(|o| o.name == "HelloCube");
        Ok::<bool, crate::session::SessionError>(has_cube)
    }
    .await;
    match result {
        Ok(true) => 0,
        Ok(false) => {
            eprintln!("✗ the cube did not appear in the scene");
            1
        }
        Err(e) => {
            eprintln!("✗ {}", error_text(&e));
            1
        }
    }
}
