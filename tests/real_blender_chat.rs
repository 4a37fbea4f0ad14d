//! Real Blender through `chat`: a scripted model (the mock Ollama of `support::mock_llm`)
//! writes real `bpy` code, a headless Blender started by `--spawn-blender` runs it, and the
//! result and the refreshed scene reach the model.
//!
//! Where `blender` is not installed these tests are skipped: each writes `SKIPPED <test>:
//! <reason>` to stderr, which `.ci/run` counts as skipped; in CI (`CI` set) a missing Blender
//! is a failure.

mod support;

use blender_session_mcp::backend::Target;
use serde_json::json;
use support::closed_port;

blender_test! {
    /// `chat` end to end with real Blender: a scripted model (the mock Ollama) writes real `bpy`
    /// code, Blender runs it, and the result and the refreshed scene reach the model.
    async fn chat_drives_real_blender_through_a_model(flavour: Flavour) {
        use support::mock_llm::{MockLlm, TOOL_MODEL, Turn, calls, last_message};
        let mock = MockLlm::start(|body| {
            let last = last_message(body);
            if last["role"] == "user" {
                calls(&[(
                    "execute_blender_code",
                    json!({"code": "bpy.ops.mesh.primitive_cube_add(location=(0, 0, 2))\n\
                        cube = bpy.context.active_object\n\
                        cube.name = 'RedCube'\n\
                        mat = bpy.data.materials.new('Red')\n\
                        mat.diffuse_color = (1, 0, 0, 1)\n\
                        cube.data.materials.append(mat)\n\
                        print(cube.name, tuple(cube.location), cube.active_material.name)"}),
                )])
            } else {
                Turn::Text(format!(
                    "Blender says: {}",
                    last["content"].as_str().unwrap_or_default().trim()
                ))
            }
        })
        .await;
        let port = closed_port();
        let url = mock.url.clone();
        let spawn = flavour.spawn_args();
        let mut args = vec!["--spawn-blender"];
        args.extend(spawn.iter().map(String::as_str));
        args.extend(["--yes", "--ollama-url", &url, "--model", TOOL_MODEL]);
        args.push("add a red cube at 0,0,2");
        let run = support::run_chat_port(port, &args, "").await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(
            run.stdout.trim(),
            "Blender says: RedCube (0.0, 0.0, 2.0) Red"
        );
        let bodies = mock.bodies("/api/chat");
        let scene = bodies[1]["messages"][0]["content"].as_str().unwrap();
        assert!(
            scene.contains("- RedCube (MESH) at (0, 0, 2)") && scene.contains("Active object: RedCube"),
            "the real scene, read again for the next turn: {scene}"
        );
        assert!(
            !blender_session_mcp::headless::port_answers(&Target::new("127.0.0.1", port)).await,
            "the chat stopped the Blender it started"
        );
    }
}
