//! Prompts that help a person start: inspect the scene, build from a description, explain
//! the last error.

use rmcp::model::{GetPromptResult, Prompt, PromptArgument, PromptMessage, Role};
use serde_json::{Map, Value};

use crate::session::{Outcome, Registry};
use crate::store::Access;

/// Inspect the scene.
pub const INSPECT_SCENE: &str = "inspect_scene";
/// Build something from a description.
pub const BUILD_FROM_DESCRIPTION: &str = "build_from_description";
/// Explain the last failed command.
pub const EXPLAIN_LAST_ERROR: &str = "explain_last_error";

fn session_argument() -> PromptArgument {
    PromptArgument::new("session_id")
        .with_description("Session to use (default: your default session)")
        .with_required(false)
}

/// Every prompt.
pub fn list() -> Vec<Prompt> {
    vec![
        Prompt::new(
            INSPECT_SCENE,
            Some("Look at the open Blender scene and summarise it: objects by type, the selection, anything unusual."),
            Some(vec![session_argument()]),
        )
        .with_title("Inspect the scene"),
        Prompt::new(
            BUILD_FROM_DESCRIPTION,
            Some("Build what you describe in the open Blender scene, step by step, checking the scene between steps."),
            Some(vec![
                PromptArgument::new("description")
                    .with_description("What to build, e.g. \"a low wooden table with four legs\"")
                    .with_required(true),
                session_argument(),
            ]),
        )
        .with_title("Build from a description"),
        Prompt::new(
            EXPLAIN_LAST_ERROR,
            Some("Explain the session's last failed command and how to fix it."),
            Some(vec![session_argument()]),
        )
        .with_title("Explain the last error"),
    ]
}

fn session_note(args: &Map<String, Value>) -> String {
    match args.get("session_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!(" Use session_id {id:?} in every tool call."),
        _ => String::new(),
    }
}

/// The messages of prompt `name`, or why it cannot be given.
pub async fn get(
    registry: &Registry,
    user: &str,
    default_session: Option<String>,
    name: &str,
    args: &Map<String, Value>,
) -> Result<GetPromptResult, String> {
    let note = session_note(args);
    let text = match name {
        INSPECT_SCENE => format!(
            "Inspect the open Blender scene.{note} Call get_scene_info, then summarise: how many objects of each type, what is selected and active, and anything that looks unusual (objects far from the origin, hidden objects, missing materials). Use get_object_info for details of at most three objects."
        ),
        BUILD_FROM_DESCRIPTION => {
            let description = args
                .get("description")
                .and_then(Value::as_str)
                .filter(|d| !d.trim().is_empty())
                .ok_or("the build_from_description prompt needs a description argument")?;
            format!(
                "Build this in the open Blender scene: {description}\n\nWork in small steps.{note} First call get_scene_info to see what is there. Then use execute_blender_code with complete Python (bpy is imported; each call starts fresh) for one part at a time, printing the names of what you created, and check the result with get_scene_info before the next part. Finish with a one-paragraph summary of what you built."
            )
        }
        EXPLAIN_LAST_ERROR => {
            let id = args
                .get("session_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(default_session);
            let history = match id.as_deref() {
                // A session the user may not read has no history to show.
                Some(id) if registry.authorize(id, user, Access::Read).await.is_ok() => {
                    registry.get_session_history(id, None).await.ok()
                }
                _ => None,
            };
            let last = history.and_then(|h| {
                h.entries
                    .into_iter()
                    .rev()
                    .find(|e| e.outcome != Outcome::Success)
            });
            match last {
                None => "There is no failed command in this session's history. Say so, and offer to inspect the scene instead.".to_owned(),
                Some(e) => format!(
                    "This command failed in Blender:\n\ntool: {}\ncommand: {}\narguments: {}\noutcome: {}\nmessage:\n{}\n\nExplain in plain words what went wrong and how to fix it, then propose a corrected call (do not run it until the user agrees).",
                    e.tool,
                    e.command,
                    e.arguments,
                    e.outcome.as_str(),
                    e.message.unwrap_or_default()
                ),
            }
        }
        other => {
            return Err(format!(
                "no prompt named {other:?}; prompts/list shows them"
            ));
        }
    };
    let description = list()
        .into_iter()
        .find(|p| p.name == name)
        .and_then(|p| p.description)
        .unwrap_or_default();
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(description),
    )
}
