//! The tool list as clients see it: the router's tools with plain input schemas (no `$ref`,
//! no `["T", "null"]`; see [`super::schema`]), a top-level `title` on every tool, and an
//! `outputSchema` for every tool that returns structured content.

use std::sync::Arc;

use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{JsonObject, Tool};
use serde_json::{Value, json};

use super::names;
use super::schema::{Defaults, plain_schema};
use super::tools::{Closed, SceneInfoResult, SessionList};
use crate::session::{SessionHistory, SessionInfo};

/// The output schema of a tool, when it returns structured content.
fn output_schema(tool: &str) -> Option<Arc<JsonObject>> {
    Some(match tool {
        names::GET_SCENE_INFO => schema_for_output::<SceneInfoResult>(),
        names::CREATE_SESSION | names::GET_SESSION_INFO => schema_for_output::<SessionInfo>(),
        names::LIST_SESSIONS => schema_for_output::<SessionList>(),
        names::GET_SESSION_HISTORY => schema_for_output::<SessionHistory>(),
        names::CLOSE_SESSION => schema_for_output::<Closed>(),
        names::GET_OBJECT_INFO | names::BLENDER_COMMAND => {
            let Value::Object(map) = json!({
                "type": "object",
                "description": "The addon's result object as Blender returned it (a result that is not an object comes as {\"result\": …}).",
                "additionalProperties": true
            }) else {
                return None;
            };
            Arc::new(map)
        }
        _ => return None,
    })
}

/// The published tools of a router.
pub fn tools<S: Send + Sync + 'static>(router: &ToolRouter<S>) -> Vec<Tool> {
    router
        .list_all()
        .into_iter()
        .map(|mut tool| {
            if let Value::Object(schema) = plain_schema(&tool.input_schema, &[], Defaults::Keep) {
                tool.input_schema = Arc::new(schema);
            }
            if tool.title.is_none() {
                tool.title = tool.annotations.as_ref().and_then(|a| a.title.clone());
            }
            tool.output_schema = output_schema(&tool.name);
            tool
        })
        .collect()
}
