//! The OpenAI-compatible dialect: `POST {base}/chat/completions` with `tools` (not streamed),
//! tool call arguments as JSON strings, tool results answered by `tool_call_id`; and
//! `GET {base}/models` to pick the model when the server serves only one.

use serde_json::{Value, json};

use super::llm::{
    LlmError, Message, ModelInfo, Reply, Role, Settings, ToolCall, error_message, transport_error,
};
use super::tools::ToolSpec;

fn authorized(request: reqwest::RequestBuilder, settings: &Settings) -> reqwest::RequestBuilder {
    match &settings.api_key {
        Some(key) if !key.is_empty() => request.bearer_auth(key),
        _ => request,
    }
}

/// When no model is named, use the server's only model (llama.cpp, a single-model LM Studio).
pub async fn check_model(
    http: &reqwest::Client,
    settings: &Settings,
) -> Result<ModelInfo, LlmError> {
    if !settings.model.trim().is_empty() {
        return Ok(ModelInfo {
            model: settings.model.clone(),
            ..ModelInfo::default()
        });
    }
    let url = format!("{}/models", settings.base_url);
    let response = authorized(http.get(&url), settings)
        .send()
        .await
        .map_err(|e| transport_error(&settings.base_url, e, settings.idle_timeout))?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if status != 200 {
        return Err(LlmError::Status {
            url,
            status,
            message: error_message(&body),
        });
    }
    let ids: Vec<String> = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("data").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    match ids.as_slice() {
        [one] => Ok(ModelInfo {
            model: one.clone(),
            ..ModelInfo::default()
        }),
        [] => Err(LlmError::NoTools(format!(
            "no model chosen and {url} lists none: pass --model"
        ))),
        many => Err(LlmError::NoTools(format!(
            "no model chosen and the server has {}: pass --model with one of {}",
            many.len(),
            many.join(", ")
        ))),
    }
}

fn wire_message(m: &Message) -> Value {
    match m.role {
        Role::Assistant if !m.tool_calls.is_empty() => json!({
            "role": "assistant",
            "content": if m.content.is_empty() { Value::Null } else { json!(m.content) },
            "tool_calls": m.tool_calls.iter().map(|c| json!({
                "id": c.id.clone().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": match &c.arguments {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                },
            })).collect::<Vec<_>>(),
        }),
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
            "content": m.content,
        }),
        role => json!({"role": role.as_str(), "content": m.content}),
    }
}

/// The request body.
pub fn request_body(settings: &Settings, messages: &[Message], tools: &[ToolSpec]) -> Value {
    let mut body = json!({
        "model": settings.model,
        "messages": messages.iter().map(wire_message).collect::<Vec<_>>(),
        "tools": tools.iter().map(ToolSpec::as_function).collect::<Vec<_>>(),
        "tool_choice": "auto",
        "stream": false,
    });
    if let Some(t) = settings.temperature {
        body["temperature"] = json!(t);
    }
    body
}

/// Read a completion: `choices[0].message` with `content` and `tool_calls`.
pub fn parse_reply(body: &Value) -> Result<Reply, LlmError> {
    if let Some(err) = body.get("error") {
        return Err(LlmError::MidStream(error_message(
            &json!({ "error": err }).to_string(),
        )));
    }
    let choice = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| LlmError::BadReply("no `choices` in the completion".into()))?;
    let message = choice
        .get("message")
        .ok_or_else(|| LlmError::BadReply("no `message` in the first choice".into()))?;
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .filter_map(|c| {
                    let f = c.get("function")?;
                    Some(ToolCall {
                        id: c.get("id").and_then(Value::as_str).map(str::to_owned),
                        name: f.get("name")?.as_str()?.to_owned(),
                        arguments: f.get("arguments").cloned().unwrap_or_else(|| json!("{}")),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let usage = body.get("usage");
    Ok(Reply {
        content: message
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        thinking: message
            .get("reasoning_content")
            .or_else(|| message.get("reasoning"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        tool_calls,
        prompt_tokens: usage
            .and_then(|u| u.get("prompt_tokens"))
            .and_then(Value::as_u64),
        output_tokens: usage
            .and_then(|u| u.get("completion_tokens"))
            .and_then(Value::as_u64),
        done_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// `POST {base}/chat/completions`.
pub async fn chat(
    http: &reqwest::Client,
    settings: &Settings,
    messages: &[Message],
    tools: &[ToolSpec],
) -> Result<Reply, LlmError> {
    let url = format!("{}/chat/completions", settings.base_url);
    let body = request_body(settings, messages, tools);
    let response = authorized(http.post(&url), settings)
        .json(&body)
        .send()
        .await
        .map_err(|e| transport_error(&settings.base_url, e, settings.idle_timeout))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| transport_error(&settings.base_url, e, settings.idle_timeout))?;
    if status != 200 {
        let message = error_message(&text);
        if status == 404 && message.to_lowercase().contains("model") {
            return Err(LlmError::NoModel {
                model: settings.model.clone(),
                url: settings.base_url.clone(),
                message,
                hint: "Check the name with `GET /v1/models`.".into(),
            });
        }
        let lower = message.to_lowercase();
        let about_tools = (lower.contains("tool") || lower.contains("function"))
            && ["support", "requires", "jinja", "not enabled", "unsupported"]
                .iter()
                .any(|w| lower.contains(w));
        if about_tools {
            return Err(LlmError::NoTools(format!(
                "the server at {url} refused the tools ({status}: {message}). The model must support tool calling \
                 (e.g. qwen2.5, qwen3, llama3.1, mistral-nemo); llama.cpp's llama-server also needs --jinja."
            )));
        }
        if status == 404 {
            return Err(LlmError::Status {
                url,
                status,
                message: format!(
                    "{message} (is --base-url right? It must end in /v1 for most servers, e.g. http://127.0.0.1:8080/v1)"
                ),
            });
        }
        return Err(LlmError::Status {
            url,
            status,
            message,
        });
    }
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| LlmError::BadReply(format!("/chat/completions: {e}")))?;
    parse_reply(&value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_and_results_use_string_arguments_and_ids() {
        let call = ToolCall {
            id: Some("call_7".into()),
            name: "execute_blender_code".into(),
            arguments: json!({"code": "print(1)"}),
        };
        let assistant = Message {
            tool_calls: vec![call.clone()],
            ..Message::text(Role::Assistant, "")
        };
        let w = wire_message(&assistant);
        assert_eq!(w["content"], Value::Null);
        assert_eq!(
            w["tool_calls"][0]["function"]["arguments"],
            json!("{\"code\":\"print(1)\"}")
        );
        let result = wire_message(&Message::tool_result(&call, "1\n"));
        assert_eq!(
            result,
            json!({"role": "tool", "tool_call_id": "call_7", "content": "1\n"})
        );
    }

    #[test]
    fn replies_and_errors_are_read() {
        let r = parse_reply(&json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_scene_info", "arguments": "{}"}}]},
            "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 50, "completion_tokens": 5}}))
        .unwrap();
        assert_eq!(r.tool_calls[0].arguments, json!("{}"));
        assert_eq!(r.prompt_tokens, Some(50));
        let e = parse_reply(&json!({"error": {"message": "boom", "type": "server_error"}}));
        assert!(matches!(e, Err(LlmError::MidStream(ref m)) if m == "boom"));
    }
}
