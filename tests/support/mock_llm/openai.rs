//! The mock's OpenAI-compatible endpoints, as documented: `GET /v1/models` and `POST
//! /v1/chat/completions` answered with a `chat.completion` object (tool call arguments as
//! JSON strings, `finish_reason`, `usage`), or an `{"error": {"message", "type", "code"}}`
//! body with an HTTP error status.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::{MockState, Turn, capabilities, json_response, next_call_id, record};

pub(super) async fn openai_models(State(state): State<MockState>) -> Response {
    record(&state, "/v1/models", &Value::Null);
    let data: Vec<Value> = state
        .models
        .iter()
        .take(1)
        .map(|(name, _)| json!({"id": name, "object": "model", "created": 1_764_000_000, "owned_by": "library"}))
        .collect();
    json_response(200, json!({"object": "list", "data": data}))
}

pub(super) async fn openai_chat(State(state): State<MockState>, body: String) -> Response {
    let body: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_response(
                400,
                json!({"error": {"message": format!("invalid JSON: {e}"), "type": "invalid_request_error", "code": null}}),
            );
        }
    };
    record(&state, "/v1/chat/completions", &body);
    if let Err(problem) = check_openai_request(&body) {
        return json_response(
            400,
            json!({"error": {"message": problem, "type": "invalid_request_error", "param": "messages", "code": null}}),
        );
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    // As Ollama's /v1 does for a model that cannot call tools.
    if body
        .get("tools")
        .is_some_and(|t| t.as_array().is_some_and(|a| !a.is_empty()))
        && capabilities(&state, &model).is_some_and(|caps| !caps.iter().any(|c| c == "tools"))
    {
        return json_response(
            400,
            json!({"error": {"message": format!("registry.ollama.ai/library/{model} does not support tools"),
                             "type": "api_error", "param": null, "code": null}}),
        );
    }
    let prompt_tokens = state.prompt_tokens.load(Ordering::SeqCst);
    let completion = |message: Value, finish: &str| {
        json!({
            "id": "chatcmpl-42", "object": "chat.completion", "created": 1_764_064_800,
            "model": model, "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 24,
                      "total_tokens": prompt_tokens + 24}
        })
    };
    match (state.script)(&body) {
        Turn::Text(text) => json_response(
            200,
            completion(json!({"role": "assistant", "content": text}), "stop"),
        ),
        Turn::Calls(calls) => {
            let calls: Vec<Value> = calls
                .into_iter()
                .enumerate()
                .map(|(i, (name, arguments))| {
                    let arguments = match arguments {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    json!({"index": i, "id": next_call_id(&state), "type": "function",
                           "function": {"name": name, "arguments": arguments}})
                })
                .collect();
            json_response(
                200,
                completion(
                    json!({"role": "assistant", "content": "", "tool_calls": calls}),
                    "tool_calls",
                ),
            )
        }
        Turn::Error { message, .. } => json_response(
            500,
            json!({"error": {"message": message, "type": "api_error", "param": null, "code": null}}),
        ),
        Turn::Status(status, body) => json_response(status, body),
        Turn::Hang => std::future::pending().await,
        Turn::Truncated(text) => json_response(
            200,
            completion(json!({"role": "assistant", "content": text}), "length"),
        ),
    }
}

/// What an OpenAI-compatible server checks: string arguments, and every tool message
/// answering a call id of an earlier assistant message.
fn check_openai_request(body: &Value) -> Result<(), String> {
    let messages = body["messages"]
        .as_array()
        .ok_or("messages must be an array")?;
    let mut ids = Vec::new();
    for m in messages {
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            if !call["function"]["arguments"].is_string() {
                return Err("tool_calls[].function.arguments must be a string".into());
            }
            ids.push(call["id"].clone());
        }
        if m["role"] == "tool" && !ids.contains(&m["tool_call_id"]) {
            return Err(format!(
                "Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls' (tool_call_id {})",
                m["tool_call_id"]
            ));
        }
    }
    Ok(())
}
