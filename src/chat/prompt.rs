//! The system prompt of the chat: standing instructions naming only the offered tools, and
//! the current scene as a short listing.

use super::tools::{CODE_TOOL, ToolOutcome, ToolSpec};
use crate::backend::SceneInfo;
use crate::mcp::names;

/// Most objects listed in the system prompt.
const MAX_LISTED_OBJECTS: usize = 40;

/// The standing instructions, naming only the tools that are offered.
pub fn instructions(specs: &[ToolSpec]) -> String {
    let has = |name: &str| specs.iter().any(|s| s.name == name);
    let mut text = String::from(
        "You are a Blender assistant. You inspect and change the open Blender scene only by \
         calling the tools you are given; never just describe code you would run.",
    );
    if has(CODE_TOOL) {
        text.push_str(
            "\n- To change the scene, call execute_blender_code with complete Python code (bpy \
             is already imported; every call starts fresh). print() whatever you need to know back.",
        );
    }
    match (has(names::GET_SCENE_INFO), has(names::GET_OBJECT_INFO)) {
        (true, true) => text.push_str(
            "\n- To look at the scene, call get_scene_info; for one object's details, get_object_info.",
        ),
        (true, false) => text.push_str("\n- To look at the scene, call get_scene_info."),
        (false, true) => {
            text.push_str("\n- For one object's details, call get_object_info.")
        }
        (false, false) => {}
    }
    text.push_str(
        "\n- Make one tool call at a time when the next step depends on its result.\n\
         - Do not repeat a call that already succeeded. When the task is done, reply to the \
         user in one or two plain sentences, without calling a tool.",
    );
    text
}

/// The scene as the system prompt shows it.
pub fn describe_scene(scene: &ToolOutcome) -> String {
    let Some(info) = scene.structured.as_ref().filter(|_| scene.ok) else {
        return format!(
            "The scene could not be read just now: {}",
            scene.text.lines().next().unwrap_or("unknown error")
        );
    };
    let scene: SceneInfo = match serde_json::from_value(info.clone()) {
        Ok(scene) => scene,
        Err(e) => return format!("The scene could not be read just now: {e}"),
    };
    let name = if scene.name.is_empty() {
        "Scene"
    } else {
        &scene.name
    };
    let objects = &scene.objects;
    // The page lists at most what get_scene_info returned; the count is the scene's.
    let total = scene.object_count.max(objects.len());
    let mut out = format!("Current scene {name:?}: {total} object(s).");
    for o in objects.iter().take(MAX_LISTED_OBJECTS) {
        let loc = o
            .location
            .iter()
            .map(|f| format!("{f}"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("\n- {} ({}) at ({loc})", o.name, o.kind));
    }
    let listed = objects.len().min(MAX_LISTED_OBJECTS);
    if total > listed {
        out.push_str(&format!(
            "\n- … and {} more (call get_scene_info with offset, type, name or collection to see them)",
            total - listed
        ));
    }
    let selected = &scene.selection.selected;
    let active = scene.selection.active.as_deref();
    out.push_str(&format!(
        "\nSelected: {}. Active object: {}.",
        if selected.is_empty() {
            "nothing".to_owned()
        } else if scene.selected_count > selected.len() {
            format!(
                "{} and {} more",
                selected.join(", "),
                scene.selected_count - selected.len()
            )
        } else {
            selected.join(", ")
        },
        active.unwrap_or("none")
    ));
    out
}
