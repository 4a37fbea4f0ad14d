//! The design's "hello cube" demo: the whole chain in one command, printed in the design's
//! log format (`[YYYY-MM-DD HH:MM:SS] message`).

use std::time::Duration;

use crate::cli::DemoArgs;
use crate::headless::{HeadlessError, ensure_running};
use crate::session::{Call, Registry, RegistryConfig};

const HELLO_CUBE: &str = "\
bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
cube = bpy.context.active_object
cube.name = 'HelloCube'
print(f'Created {cube.name} at {tuple(round(v, 2) for v in cube.location)}')
";

/// Run the demo; returns the process exit code.
pub async fn run(args: &DemoArgs) -> i32 {
    let target = args.blender.target();
    let started = match ensure_running(&target, || args.spawn.options(&target)).await {
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
    let code = hello_cube(args, &target).await;
    if let Some(blender) = started {
        tracing::info!("stopping the headless Blender this demo started");
        if let Err(e) = blender.stop(Duration::from_secs(10)).await {
            eprintln!("✗ could not stop Blender: {e}");
        }
    }
    code
}

async fn hello_cube(args: &DemoArgs, target: &crate::blender::Target) -> i32 {
    let b = &args.blender;
    let registry = Registry::new(RegistryConfig {
        default_target: target.clone(),
        connect_timeout: b.connect_timeout,
        command_timeout: b.command_timeout,
        max_reply_bytes: b.max_reply_bytes,
        max_request_bytes: b.max_request_bytes,
        ..RegistryConfig::default()
    });
    let result = async {
        let id = registry.create_session(None).await?;
        let out = registry
            .execute_code(&id, HELLO_CUBE, &Call::new("execute_blender_code"))
            .await?;
        print!("{out}", out = out.stdout);
        let scene = registry
            .scene_info(&id, &Call::new("get_scene_info"))
            .await?;
        println!("\nScene {:?}:", scene["name"].as_str().unwrap_or("?"));
        for obj in scene["objects"].as_array().into_iter().flatten() {
            println!(
                "  {:<12} {:<8} {}",
                obj["name"].as_str().unwrap_or("?"),
                obj["type"].as_str().unwrap_or("?"),
                obj["location"]
            );
        }
        let info = registry.get_session_info(&id)?;
        println!("\nSession info:");
        println!(
            "{}",
            serde_json::to_string_pretty(&info).unwrap_or_default()
        );
        println!("\nHistory:");
        for entry in registry.get_session_history(&id, None)?.entries {
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
        let has_cube = scene["objects"]
            .as_array()
            .is_some_and(|objs| objs.iter().any(|o| o["name"] == "HelloCube"));
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
            eprintln!("✗ {e}");
            1
        }
    }
}
