//! The OpenAI-compatible dialect: `POST {base}/chat/completions` with `tools` (not streamed),
//! tool call arguments as JSON strings, tool results answered by `tool_call_id`; and
//! `GET {base}/models` to pick the model when the server serves only one.

use serde::Deserialize;
use serde_json::{Value, json};

use super::llm::{
    LlmError, Message, ModelInfo, Reply, Role, Settings, WireCall, error_message, transport_error,
};
use super::tools::ToolSpec;

/// What this client reads of `GET /models`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ModelList {
    data: Option<Vec<ModelEntry>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ModelEntry {
    id: Option<String>,
}

/// What this client reads of a completion (or of an error in its place).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Completion {
    error: Option<Value>,
    choices: Option<Vec<Choice>>,
    usage: Option<Usage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Choice {
    message: Option<ChoiceMessage>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChoiceMessage {
    content: Option<String>,
    /// Servers name the reasoning text either way.
    reasoning_content: Option<String>,
    reasoning: Option<String>,
    tool_calls: Option<Vec<WireCall>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

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
    let ids: Vec<String> = serde_json::from_str::<ModelList>(&body)
        .ok()
        .and_then(|list| list.data)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.id)
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
    let completion = Completion::deserialize(body)
        .map_err(|e| LlmError::BadReply(format!("/chat/completions: {e}")))?;
    if let Some(err) = completion.error {
        return Err(LlmError::MidStream(error_message(
            &json!({ "error": err }).to_string(),
        )));
    }
    let choice = completion
        .choices
        .and_then(|c| c.into_iter().next())
        .ok_or_else(|| LlmError::BadReply("no `choices` in the completion".into()))?;
    let message = choice
        .message
        .ok_or_else(|| LlmError::BadReply("no `message` in the first choice".into()))?;
    let usage = completion.usage.unwrap_or_default();
    Ok(Reply {
        content: message.content.unwrap_or_default(),
        thinking: message
            .reasoning_content
            .or(message.reasoning)
            .unwrap_or_default(),
        tool_calls: message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.into_tool_call(|| json!("{}")))
            .collect(),
        prompt_tokens: usage.prompt_tokens,
        output_tokens: usage.completion_tokens,
        done_reason: choice.finish_reason,
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
    use super::super::llm::ToolCall;
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

    #[test]
    fn missing_or_odd_parts_are_named() {
        let e = parse_reply(&json!({"choices": []})).unwrap_err();
        assert!(matches!(e, LlmError::BadReply(ref m) if m == "no `choices` in the completion"));
        let e = parse_reply(&json!({"choices": [{"finish_reason": "stop"}]})).unwrap_err();
        assert!(matches!(e, LlmError::BadReply(ref m) if m == "no `message` in the first choice"));
        let e = parse_reply(&json!({"choices": "none"})).unwrap_err();
        assert!(matches!(e, LlmError::BadReply(ref m) if m.starts_with("/chat/completions: ")));
        let r = parse_reply(
            &json!({"choices": [{"message": {"content": "hi", "reasoning": "hmm",
            "tool_calls": null}}], "usage": null}),
        )
        .unwrap();
        assert_eq!(
            (r.content.as_str(), r.thinking.as_str(), r.prompt_tokens),
            ("hi", "hmm", None)
        );
    }
}
