//! The tool list as clients see it: the router's tools with plain input schemas (no `$ref`,
//! no `["T", "null"]`; see [`super::schema`]), a top-level `title` on every tool, and an
//! `outputSchema` for every tool that returns structured content; and the [`Toolbox`] a
//! server calls them through.

use std::sync::Arc;

use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{JsonObject, Tool};
use serde_json::{Value, json};

use super::names;
use super::schema::{Defaults, plain_schema};
use super::tools::{Closed, SceneInfoResult, SessionList};
use crate::session::{SessionHistory, SessionInfo};

/// The tools this server serves: the router that calls them, the list it publishes and each
/// one's input schema as the argument checks read it. Building it generates every schema
/// (about a millisecond), so it waits for the first call or listing instead of delaying the
/// answer to `initialize`.
pub(super) struct Toolbox {
    /// Calls a tool by name.
    pub(super) router: ToolRouter<super::BlenderServer>,
    /// The published list ([`tools`]).
    pub(super) tools: Vec<Tool>,
    /// Each tool's input schema, by name.
    pub(super) parameters: std::collections::HashMap<String, Value>,
}

impl Toolbox {
    /// Every tool, or every tool but those that run code when `code_exec` is false.
    pub(super) fn build(code_exec: bool) -> Toolbox {
        let mut router = super::BlenderServer::tool_router();
        router.merge(super::BlenderServer::sharing_router());
        if !code_exec {
            for name in [names::EXECUTE_BLENDER_CODE, names::BLENDER_COMMAND] {
                router.remove_route(name);
            }
        }
        let tools: Vec<Tool> = tools(&router)
            .into_iter()
            .filter(|t| router.has_route(&t.name))
            .collect();
        let parameters = tools
            .iter()
            .map(|t| (t.name.to_string(), Value::Object((*t.input_schema).clone())))
            .collect();
        Toolbox {
            router,
            tools,
            parameters,
        }
    }
}

/// The output schema of a tool, when it returns structured content.
fn output_schema(tool: &str) -> Option<Arc<JsonObject>> {
    Some(match tool {
        names::GET_SCENE_INFO => schema_for_output::<SceneInfoResult>(),
        names::CREATE_SESSION | names::GET_SESSION_INFO => schema_for_output::<SessionInfo>(),
        names::LIST_SESSIONS => schema_for_output::<SessionList>(),
        names::GET_SESSION_HISTORY => schema_for_output::<SessionHistory>(),
        names::CLOSE_SESSION => schema_for_output::<Closed>(),
        names::SHARE_SESSION | names::UNSHARE_SESSION => {
            schema_for_output::<super::sharing::Shared>()
        }
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

/// An output schema every validator compiles: no `$schema` (a draft-07 validator refuses
/// 2020-12) and no `format` (schemars' `uint64`, `double`, … are not standard formats).
fn portable(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("$schema");
            if map.get("format").is_some_and(Value::is_string) {
                map.remove("format");
            }
            for (key, value) in map.iter_mut() {
                if key == "properties" || key == "$defs" || key == "definitions" {
                    // A map of names to schemas: its keys are names, not keywords.
                    if let Value::Object(named) = value {
                        named.values_mut().for_each(portable);
                    }
                } else {
                    portable(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(portable),
        _ => {}
    }
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
            tool.output_schema = output_schema(&tool.name).map(|schema| {
                let mut value = Value::Object((*schema).clone());
                portable(&mut value);
                match value {
                    Value::Object(map) => Arc::new(map),
                    _ => schema,
                }
            });
            tool
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::BlenderServer;

    fn walk(value: &Value, found: &mut Vec<String>, path: &str) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" || k == "anyOf" || k == "oneOf" {
                        found.push(format!("{path}/{k}"));
                    }
                    if k == "type" && v.is_array() {
                        found.push(format!("{path}/type {v}"));
                    }
                    walk(v, found, &format!("{path}/{k}"));
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found, path)),
            _ => {}
        }
    }

    #[test]
    fn input_schemas_are_plain_and_output_schemas_portable() {
        let server = BlenderServer::new(crate::session::Registry::new(Default::default()));
        let tools = server.tools();
        for tool in tools.iter() {
            let mut found = Vec::new();
            walk(
                &Value::Object((*tool.input_schema).clone()),
                &mut found,
                &tool.name,
            );
            assert!(found.is_empty(), "not plain: {found:?}");
            if let Some(out) = &tool.output_schema {
                let text = Value::Object((**out).clone()).to_string();
                assert!(!text.contains("\"$schema\""), "{}: {text}", tool.name);
                assert!(!text.contains("\"format\":\"uint"), "{}: {text}", tool.name);
            }
        }
        let shot = tools
            .iter()
            .find(|t| t.name == names::GET_VIEWPORT_SCREENSHOT)
            .expect("screenshot tool");
        let max_size = &shot.input_schema["properties"]["max_size"];
        assert_eq!(max_size["default"], 800, "{max_size}");
        assert_eq!(max_size["minimum"], 16, "{max_size}");
        assert_eq!(max_size["type"], "integer", "{max_size}");
    }
}
