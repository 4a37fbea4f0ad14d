//! The tools the chat offers a model, taken from the MCP server's own tool list (one source of
//! truth for names, descriptions and schemas), and what small local models need around them:
//! a curated default set, schemas simplified to what Ollama understands, arguments coerced to
//! the schema's types, and tool calls written as text recognised as calls.

use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Map, Value, json};

use super::ChatError;
use crate::mcp::{BlenderServer, names, schema};
use crate::session::Registry;

/// The tools offered when `--tools` is not given: enough to look at and change the scene, few
/// enough for a small model to choose well.
pub const DEFAULT_TOOLS: &[&str] = &[
    names::GET_SCENE_INFO,
    names::EXECUTE_BLENDER_CODE,
    names::GET_OBJECT_INFO,
];

/// The tool whose calls a person approves before they run.
pub const CODE_TOOL: &str = names::EXECUTE_BLENDER_CODE;

/// Parameters the chat fills in itself and never shows the model: it works in its own session.
const HIDDEN_PARAMETERS: &[&str] = &["session_id"];

/// A tool as offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The MCP tool name.
    pub name: String,
    /// The MCP tool description.
    pub description: String,
    /// The simplified JSON schema of its arguments (always an object schema).
    pub parameters: Value,
}

impl ToolSpec {
    /// The tool in the `{"type": "function", "function": {...}}` form both dialects use.
    pub fn as_function(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            }
        })
    }
}

/// Choose the tools to offer: `wanted` names in their order, or `all` in the server's order.
pub fn select(all: &[Tool], wanted: &[String]) -> Result<Vec<ToolSpec>, ChatError> {
    let everything = wanted.iter().any(|w| w.trim() == "all");
    let names: Vec<&str> = all.iter().map(|t| t.name.as_ref()).collect();
    if !everything {
        let unknown: Vec<&str> = wanted
            .iter()
            .map(|w| w.trim())
            .filter(|w| !w.is_empty() && !names.contains(w))
            .collect();
        if !unknown.is_empty() {
            return Err(ChatError::Usage(format!(
                "unknown tool(s) in --tools: {}. Available: {} (or `all`).",
                unknown.join(", "),
                names.join(", ")
            )));
        }
    }
    let spec = |t: &Tool| ToolSpec {
        name: t.name.to_string(),
        description: t.description.as_deref().unwrap_or_default().to_owned(),
        parameters: simplify_schema(&t.input_schema),
    };
    let mut chosen: Vec<ToolSpec> = Vec::new();
    if everything {
        chosen.extend(all.iter().map(spec));
    } else {
        for w in wanted.iter().map(|w| w.trim()) {
            if let Some(t) = all.iter().find(|t| t.name == w)
                && !chosen.iter().any(|c| c.name == w)
            {
                chosen.push(spec(t));
            }
        }
    }
    if chosen.is_empty() {
        return Err(ChatError::Usage(format!(
            "--tools chose no tool. Available: {} (or `all`).",
            names.join(", ")
        )));
    }
    Ok(chosen)
}

/// Simplify an object schema for models served by Ollama (see [`schema::plain_schema`]);
/// parameters the chat fills in itself (`session_id`) are removed.
pub fn simplify_schema(input: &Map<String, Value>) -> Value {
    schema::plain_schema(input, HIDDEN_PARAMETERS, schema::Defaults::Fold)
}

/// Coerce a model's arguments to the tool's schema ([`schema::coerce_arguments`], including
/// numbers and booleans sent where text is expected).
pub fn coerce_arguments(spec: &ToolSpec, arguments: &Value) -> Map<String, Value> {
    schema::coerce_arguments(&spec.parameters, arguments, schema::Coercion::Both)
}

pub use schema::as_object;

/// What one tool call gave back.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    /// False when the tool reported an error (`isError`) or could not be called.
    pub ok: bool,
    /// The result's text (for `execute_blender_code`, what the code printed).
    pub text: String,
    /// The structured result, when the tool gave one.
    pub structured: Option<Value>,
    /// How long the call took.
    pub duration: Duration,
}

/// The MCP server's tools, called in process: the chat is an MCP client of its own server
/// over an in-memory pipe, so it sees exactly the tools, schemas and results any MCP client
/// sees, and its calls run in its own session of the registry.
pub struct BlenderTools {
    client: RunningService<RoleClient, ()>,
    server: tokio::task::JoinHandle<()>,
    tools: Vec<Tool>,
}

impl BlenderTools {
    /// Start the server over `registry` and connect to it.
    pub async fn start(registry: Registry) -> Result<Self, ChatError> {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let server = BlenderServer::new(registry);
        let server = tokio::spawn(async move {
            if let Ok(service) = server.serve(server_io).await {
                let _ = service.waiting().await;
            }
        });
        let client = ()
            .serve(client_io)
            .await
            .map_err(|e| ChatError::Internal(format!("in-process MCP client: {e}")))?;
        let tools = client
            .list_all_tools()
            .await
            .map_err(|e| ChatError::Internal(format!("listing the tools: {e}")))?;
        Ok(BlenderTools {
            client,
            server,
            tools,
        })
    }

    /// Every tool the server has.
    pub fn all(&self) -> &[Tool] {
        &self.tools
    }

    /// Call a tool. A tool error is an outcome with `ok: false`, never an `Err`.
    pub async fn call(&self, name: &str, arguments: Map<String, Value>) -> ToolOutcome {
        let started = Instant::now();
        let result = self
            .client
            .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(arguments))
            .await;
        let duration = started.elapsed();
        match result {
            Ok(result) => ToolOutcome {
                ok: result.is_error != Some(true),
                text: result
                    .content
                    .iter()
                    .map(|c| match c.as_text() {
                        Some(t) => t.text.clone(),
                        None => "[non-text content omitted]".to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                structured: result.structured_content.clone(),
                duration,
            },
            Err(e) => ToolOutcome {
                ok: false,
                text: format!("the tool could not be called: {e}"),
                structured: None,
                duration,
            },
        }
    }

    /// Close the MCP connection and wait for the server task.
    pub async fn close(self) {
        let BlenderTools { client, server, .. } = self;
        let _ = client.cancel().await;
        let _ = server.await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tool spec with no description, for tests.
    pub(crate) fn spec(name: &str, parameters: Value) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters,
        }
    }

    #[test]
    fn schema_is_simplified_for_ollama() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "P",
            "type": "object",
            "$defs": {"Mode": {"type": "string", "enum": ["a", "b"], "description": "Mode."}},
            "properties": {
                "max_size": {"type": ["integer", "null"], "format": "uint32",
                             "minimum": 16, "maximum": 8192, "default": null,
                             "description": "Largest side."},
                "mode": {"anyOf": [{"$ref": "#/$defs/Mode"}, {"type": "null"}], "default": "a"},
                "session_id": {"type": ["string", "null"]}
            },
            "required": ["mode", "session_id"]
        });
        let s = simplify_schema(schema.as_object().unwrap());
        assert_eq!(
            s,
            json!({
                "type": "object",
                "properties": {
                    "max_size": {"type": "integer", "description": "Largest side. (from 16 to 8192)"},
                    "mode": {"type": "string", "description": "Mode. (default \"a\")", "enum": ["a", "b"]}
                },
                "required": ["mode"]
            })
        );
        let empty = simplify_schema(json!({"type": "object"}).as_object().unwrap());
        assert_eq!(
            empty,
            json!({"type": "object", "properties": {}, "required": []})
        );
    }

    #[test]
    fn arguments_are_coerced_to_the_schema() {
        let s = spec(
            "t",
            json!({"type": "object", "properties": {
                "n": {"type": "integer"}, "x": {"type": "number"}, "b": {"type": "boolean"},
                "s": {"type": "string"}, "o": {"type": "object"}
            }}),
        );
        let args = json!({"n": "2", "x": "1.5", "b": "true", "s": 7, "o": "{\"k\": 1}",
                          "session_id": "scene-x"});
        assert_eq!(
            Value::Object(coerce_arguments(&s, &args)),
            json!({"n": 2, "x": 1.5, "b": true, "s": "7", "o": {"k": 1}})
        );
        let as_text = json!("{\"n\": \"3\"}");
        assert_eq!(
            Value::Object(coerce_arguments(&s, &as_text)),
            json!({"n": 3})
        );
        let junk = json!({"n": "many"});
        assert_eq!(
            Value::Object(coerce_arguments(&s, &junk)),
            json!({"n": "many"})
        );
    }
}
