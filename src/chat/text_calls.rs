//! Tool calls a small model wrote as text instead of making them (a JSON call bare, in a
//! fenced block or in `<tool_call>` tags), recognised and turned into real calls.

use serde_json::{Value, json};

use super::llm::ToolCall;
use super::tools::ToolSpec;

/// Tool calls a model wrote as text instead of making them: JSON objects such as
/// `{"name": "get_scene_info", "arguments": {}}` (also with `parameters`, or wrapped in
/// `function`), bare, in a ```json fence, or in `<tool_call>…</tool_call>` tags. Only calls
/// of offered tools count. Returns the text left around the calls and the calls, or `None`
/// when the content holds no call.
pub fn calls_in_text(content: &str, tools: &[ToolSpec]) -> Option<(String, Vec<ToolCall>)> {
    let mut calls = Vec::new();
    let mut rest = String::new();
    if content.contains("<tool_call>") {
        let mut tail = content;
        while let Some(start) = tail.find("<tool_call>") {
            rest.push_str(&tail[..start]);
            let after = &tail[start + "<tool_call>".len()..];
            let (inner, next) = match after.find("</tool_call>") {
                Some(end) => (&after[..end], &after[end + "</tool_call>".len()..]),
                None => (after, ""),
            };
            calls.extend(parse_calls(strip_fence(inner), tools));
            tail = next;
        }
        rest.push_str(tail);
    } else {
        let trimmed = content.trim().trim_start_matches("<|python_tag|>");
        calls.extend(parse_calls(strip_fence(trimmed), tools));
    }
    if calls.is_empty() {
        None
    } else {
        Some((rest.trim().to_owned(), calls))
    }
}

fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    if let Some(body) = t.strip_prefix("```")
        && let Some(body) = body.strip_suffix("```")
    {
        let body = body.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        return body.trim();
    }
    t
}

fn parse_calls(text: &str, tools: &[ToolSpec]) -> Vec<ToolCall> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let items = match value {
        Value::Array(items) => items,
        Value::Object(ref map) if map.get("tool_calls").is_some_and(Value::is_array) => {
            map["tool_calls"].as_array().cloned().unwrap_or_default()
        }
        other => vec![other],
    };
    items
        .iter()
        .filter_map(|item| call_from_json(item, tools))
        .collect()
}

fn call_from_json(item: &Value, tools: &[ToolSpec]) -> Option<ToolCall> {
    let function = item.get("function").filter(|f| f.is_object());
    let source = function.unwrap_or(item);
    let name = source
        .get("name")
        .or_else(|| item.get("function").filter(|f| f.is_string()))
        .or_else(|| item.get("tool"))
        .and_then(Value::as_str)?;
    if !tools.iter().any(|t| t.name == name) {
        return None;
    }
    let arguments = ["arguments", "parameters", "args", "input"]
        .iter()
        .find_map(|k| source.get(*k).or_else(|| item.get(*k)))
        .cloned()
        .unwrap_or_else(|| json!({}));
    Some(ToolCall {
        id: item.get("id").and_then(Value::as_str).map(str::to_owned),
        name: name.to_owned(),
        arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::tools::tests::spec;

    #[test]
    fn text_tool_calls_are_recognised() {
        let tools = vec![
            spec("get_scene_info", json!({})),
            spec("execute_blender_code", json!({})),
        ];
        let (rest, calls) = calls_in_text(
            "Let me look.\n<tool_call>\n{\"name\": \"get_scene_info\", \"arguments\": {}}\n</tool_call>",
            &tools,
        )
        .unwrap();
        assert_eq!(rest, "Let me look.");
        assert_eq!(calls[0].name, "get_scene_info");

        let (_, calls) = calls_in_text(
            "```json\n{\"name\": \"execute_blender_code\", \"parameters\": {\"code\": \"print(1)\"}}\n```",
            &tools,
        )
        .unwrap();
        assert_eq!(calls[0].arguments, json!({"code": "print(1)"}));

        let (_, calls) = calls_in_text(
            "[{\"function\": {\"name\": \"get_scene_info\", \"arguments\": \"{}\"}}, {\"name\": \"get_scene_info\"}]",
            &tools,
        )
        .unwrap();
        assert_eq!(calls.len(), 2);

        assert!(calls_in_text("{\"name\": \"rm_rf\", \"arguments\": {}}", &tools).is_none());
        assert!(calls_in_text("The cube is at {0, 0, 1}.", &tools).is_none());
        assert!(calls_in_text("{\"name\": \"Cube\"}", &tools).is_none());
    }
}
