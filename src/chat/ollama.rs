//! Ollama's native API: `POST /api/show` for capabilities, `GET /api/tags` for installed
//! models, and `POST /api/chat` streamed as NDJSON (content chunks, `tool_calls` in a
//! `done: false` chunk, a final `done: true` chunk with metrics, or an `{"error": …}` line).

use serde_json::{Map, Value, json};

use super::llm::{
    LlmError, Message, ModelInfo, Reply, Role, Settings, ToolCall, error_message, transport_error,
};
use super::tools::{ToolSpec, as_object};

/// Tool-capable models suggested when none is installed.
const SUGGESTED: &str = "qwen3:8b, qwen2.5:7b, llama3.1:8b, llama3.2:3b, mistral-nemo";

/// Read an address the way Ollama reads `OLLAMA_HOST`: without a scheme it is `http` on port
/// 11434 (`0.0.0.0`, `host`, `host:port`, `:port`, `[::1]:port`); with `http://` or
/// `https://` the default port is 80 or 443. A listen-anywhere host (`0.0.0.0`, `[::]`) or
/// an empty one means this machine.
pub fn normalize_url(raw: &str) -> String {
    let t = raw.trim().trim_end_matches('/');
    let (scheme, rest, default_port) = match t.split_once("://") {
        None => ("http", t, "11434"),
        Some(("https", rest)) => ("https", rest, "443"),
        Some((scheme, rest)) => (scheme, rest, "80"),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        // [v6]:port or [v6]
        match inner.split_once(']') {
            Some((h, tail)) => (format!("[{h}]"), tail.strip_prefix(':')),
            None => (hostport.to_owned(), None),
        }
    } else if hostport.matches(':').count() > 1 {
        // A bare IPv6 address.
        (format!("[{hostport}]"), None)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    let host = match host.as_str() {
        "" | "0.0.0.0" => "127.0.0.1".to_owned(),
        "[::]" => "[::1]".to_owned(),
        _ => host,
    };
    let port = port
        .filter(|p| p.parse::<u16>().is_ok())
        .unwrap_or(default_port);
    format!("{scheme}://{host}:{port}{path}")
}

async fn post(
    http: &reqwest::Client,
    settings: &Settings,
    path: &str,
    body: &Value,
) -> Result<reqwest::Response, LlmError> {
    let url = format!("{}{path}", settings.base_url);
    http.post(&url)
        .json(body)
        .send()
        .await
        .map_err(|e| transport_error(&settings.base_url, e, settings.idle_timeout))
}

async fn show(
    http: &reqwest::Client,
    settings: &Settings,
    model: &str,
) -> Result<Result<Value, (u16, String)>, LlmError> {
    let response = post(http, settings, "/api/show", &json!({"model": model})).await?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| transport_error(&settings.base_url, e, settings.idle_timeout))?;
    if status != 200 {
        return Ok(Err((status, error_message(&body))));
    }
    serde_json::from_str(&body)
        .map(Ok)
        .map_err(|e| LlmError::BadReply(format!("/api/show: {e}")))
}

fn capabilities(show: &Value) -> Option<Vec<String>> {
    show.get("capabilities").and_then(Value::as_array).map(|c| {
        c.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

/// Installed models that can call tools (asks `/api/show` of each, at most 40).
async fn installed_tool_models(http: &reqwest::Client, settings: &Settings) -> Vec<String> {
    let url = format!("{}/api/tags", settings.base_url);
    let Ok(response) = http.get(&url).send().await else {
        return Vec::new();
    };
    let Ok(tags) = response.json::<Value>().await else {
        return Vec::new();
    };
    let names: Vec<String> = tags
        .get("models")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|m| m.get("name").or_else(|| m.get("model")))
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut capable = Vec::new();
    for name in names.into_iter().take(40) {
        if let Ok(Ok(info)) = show(http, settings, &name).await
            && capabilities(&info).is_some_and(|c| c.iter().any(|c| c == "tools"))
        {
            capable.push(name);
        }
    }
    capable
}

async fn choose_hint(http: &reqwest::Client, settings: &Settings) -> String {
    let installed = installed_tool_models(http, settings).await;
    if installed.is_empty() {
        format!(
            "No installed model can call tools; pull one, e.g. `ollama pull qwen2.5:7b` (others: {SUGGESTED})."
        )
    } else {
        format!(
            "Installed models that can call tools: {}. Choose one with --model or OLLAMA_MODEL.",
            installed.join(", ")
        )
    }
}

/// `POST /api/show`: the model must exist and list `tools` among its capabilities.
pub async fn check_model(
    http: &reqwest::Client,
    settings: &Settings,
) -> Result<ModelInfo, LlmError> {
    if settings.model.trim().is_empty() {
        return Err(LlmError::NoTools(format!(
            "no model chosen: pass --model or set OLLAMA_MODEL. {}",
            choose_hint(http, settings).await
        )));
    }
    let info = match show(http, settings, &settings.model).await? {
        Ok(info) => info,
        Err((404, message)) => {
            return Err(LlmError::NoModel {
                model: settings.model.clone(),
                url: settings.base_url.clone(),
                message,
                hint: format!(
                    "Pull it with `ollama pull {}`. {}",
                    settings.model,
                    choose_hint(http, settings).await
                ),
            });
        }
        Err((status, message)) => {
            return Err(LlmError::Status {
                url: format!("{}/api/show", settings.base_url),
                status,
                message,
            });
        }
    };
    let caps = capabilities(&info);
    if let Some(c) = &caps
        && !c.iter().any(|c| c == "tools")
    {
        return Err(LlmError::NoTools(format!(
            "model {:?} cannot call tools (its capabilities: {}), so it cannot drive Blender. {}",
            settings.model,
            if c.is_empty() {
                "none listed".to_owned()
            } else {
                c.join(", ")
            },
            choose_hint(http, settings).await
        )));
    }
    if caps.is_none() {
        eprintln!(
            "warning: this Ollama does not report model capabilities (older than 0.6?); assuming {:?} can call tools",
            settings.model
        );
    }
    let context_length = info
        .get("model_info")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.ends_with(".context_length"))
                .and_then(|(_, v)| v.as_u64())
        });
    if settings.think
        && !caps
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| c == "thinking"))
    {
        return Err(LlmError::NoTools(format!(
            "--think was given but model {:?} does not think (no `thinking` capability); drop --think or choose a thinking model such as qwen3",
            settings.model
        )));
    }
    Ok(ModelInfo {
        model: settings.model.clone(),
        capabilities: caps,
        context_length,
    })
}

/// A message in Ollama's format: tool call arguments are objects; a tool result carries
/// `tool_name` and, when the call had one, `tool_call_id`.
fn wire_message(m: &Message) -> Value {
    let mut out = Map::new();
    out.insert("role".into(), json!(m.role.as_str()));
    out.insert("content".into(), json!(m.content));
    if !m.tool_calls.is_empty() {
        let calls: Vec<Value> = m
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // Ollama takes the arguments only as an object.
                let arguments = Value::Object(as_object(&c.arguments));
                let mut call =
                    json!({"function": {"index": i, "name": c.name, "arguments": arguments}});
                if let Some(id) = &c.id {
                    call["id"] = json!(id);
                }
                call
            })
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    if m.role == Role::Assistant && !m.thinking.is_empty() {
        out.insert("thinking".into(), json!(m.thinking));
    }
    if m.role == Role::Tool {
        if let Some(name) = &m.tool_name {
            out.insert("tool_name".into(), json!(name));
        }
        if let Some(id) = &m.tool_call_id {
            out.insert("tool_call_id".into(), json!(id));
        }
    }
    Value::Object(out)
}

/// The `/api/chat` request body.
pub fn request_body(settings: &Settings, messages: &[Message], tools: &[ToolSpec]) -> Value {
    let mut options = json!({"num_ctx": settings.num_ctx});
    if let Some(t) = settings.temperature {
        options["temperature"] = json!(t);
    }
    let mut body = json!({
        "model": settings.model,
        "messages": messages.iter().map(wire_message).collect::<Vec<_>>(),
        "tools": tools.iter().map(ToolSpec::as_function).collect::<Vec<_>>(),
        "stream": true,
        "options": options,
    });
    // `think: false` turns a thinking model's reasoning off (faster, and small models call
    // tools more reliably); models that do not think ignore it.
    body["think"] = json!(settings.think);
    body
}

fn parse_call(call: &Value) -> Option<ToolCall> {
    let function = call.get("function")?;
    let name = function.get("name")?.as_str()?.to_owned();
    let arguments = function
        .get("arguments")
        .cloned()
        .unwrap_or_else(|| json!({}));
    Some(ToolCall {
        id: call.get("id").and_then(Value::as_str).map(str::to_owned),
        name,
        arguments,
    })
}

/// Folds the NDJSON chunks of one `/api/chat` answer into a [`Reply`].
#[derive(Debug, Default)]
pub struct StreamFolder {
    reply: Reply,
    done: bool,
    pending: Vec<u8>,
}

impl StreamFolder {
    /// Feed bytes as they arrive; a line can be split anywhere.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), LlmError> {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = memchr::memchr(b'\n', &self.pending) {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.line(&line)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8]) -> Result<(), LlmError> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(text)
            .map_err(|e| LlmError::BadReply(format!("a line of the /api/chat stream: {e}")))?;
        if let Some(err) = chunk.get("error") {
            let message = match err {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return Err(LlmError::MidStream(message));
        }
        if let Some(message) = chunk.get("message") {
            if let Some(c) = message.get("content").and_then(Value::as_str) {
                self.reply.content.push_str(c);
            }
            if let Some(t) = message.get("thinking").and_then(Value::as_str) {
                self.reply.thinking.push_str(t);
            }
            if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
                self.reply
                    .tool_calls
                    .extend(calls.iter().filter_map(parse_call));
            }
        }
        if chunk.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            self.reply.done_reason = chunk
                .get("done_reason")
                .and_then(Value::as_str)
                .map(str::to_owned);
            self.reply.prompt_tokens = chunk.get("prompt_eval_count").and_then(Value::as_u64);
            self.reply.output_tokens = chunk.get("eval_count").and_then(Value::as_u64);
        }
        Ok(())
    }

    /// Characters of answer so far.
    pub fn progress(&self) -> usize {
        self.reply.content.len() + self.reply.thinking.len()
    }

    /// The reply, once the stream has ended.
    pub fn finish(mut self) -> Result<Reply, LlmError> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(&rest)?;
        }
        if !self.done {
            return Err(LlmError::BadReply(
                "the /api/chat stream ended before its final `done: true` chunk (did Ollama crash or run out of memory?)".into(),
            ));
        }
        Ok(self.reply)
    }
}

/// `POST /api/chat` with streaming.
pub async fn chat(
    http: &reqwest::Client,
    settings: &Settings,
    messages: &[Message],
    tools: &[ToolSpec],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Reply, LlmError> {
    let body = request_body(settings, messages, tools);
    let mut response = post(http, settings, "/api/chat", &body).await?;
    let status = response.status().as_u16();
    if status != 200 {
        let text = response.text().await.unwrap_or_default();
        let message = error_message(&text);
        if status == 404 {
            return Err(LlmError::NoModel {
                model: settings.model.clone(),
                url: settings.base_url.clone(),
                message,
                hint: format!("Pull it with `ollama pull {}`.", settings.model),
            });
        }
        return Err(LlmError::Status {
            url: format!("{}/api/chat", settings.base_url),
            status,
            message,
        });
    }
    let mut folder = StreamFolder::default();
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                folder.feed(&bytes)?;
                progress(folder.progress());
            }
            Ok(None) => break,
            Err(e) => {
                return Err(transport_error(
                    &settings.base_url,
                    e,
                    settings.idle_timeout,
                ));
            }
        }
    }
    folder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_host_forms_become_urls() {
        assert_eq!(
            normalize_url("http://127.0.0.1:11434/"),
            "http://127.0.0.1:11434"
        );
        assert_eq!(normalize_url("0.0.0.0"), "http://127.0.0.1:11434");
        assert_eq!(normalize_url("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(normalize_url("gpu-box"), "http://gpu-box:11434");
        assert_eq!(normalize_url(":11435"), "http://127.0.0.1:11435");
        assert_eq!(
            normalize_url("https://ollama.example.com"),
            "https://ollama.example.com:443"
        );
        assert_eq!(
            normalize_url("http://gpu-box"),
            "http://gpu-box:80",
            "as Ollama reads it"
        );
        assert_eq!(normalize_url("[::1]:11500"), "http://[::1]:11500");
        assert_eq!(normalize_url("http://[::1]"), "http://[::1]:80");
        assert_eq!(normalize_url("[::]"), "http://[::1]:11434");
        assert_eq!(normalize_url("::1"), "http://[::1]:11434");
        assert_eq!(
            normalize_url("http://box:8080/ollama/"),
            "http://box:8080/ollama"
        );
    }

    #[test]
    fn stream_chunks_fold_across_any_split() {
        let stream = concat!(
            "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n",
            "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"lo ✓\"},\"done\":false}\n",
            "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_1\",\"function\":{\"index\":0,\"name\":\"get_scene_info\",\"arguments\":{}}}]},\"done\":false}\n",
            "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":120,\"eval_count\":9}\n",
        );
        for split in 1..stream.len() {
            let mut f = StreamFolder::default();
            f.feed(&stream.as_bytes()[..split]).unwrap();
            f.feed(&stream.as_bytes()[split..]).unwrap();
            let r = f.finish().unwrap();
            assert_eq!(r.content, "Hello ✓");
            assert_eq!(r.tool_calls.len(), 1);
            assert_eq!(r.tool_calls[0].id.as_deref(), Some("call_1"));
            assert_eq!(r.prompt_tokens, Some(120));
        }
    }

    #[test]
    fn error_line_and_early_end_are_errors() {
        let mut f = StreamFolder::default();
        let e = f
            .feed(b"{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"error\":\"out of memory\"}\n")
            .unwrap_err();
        assert!(matches!(e, LlmError::MidStream(ref m) if m == "out of memory"));
        let mut f = StreamFolder::default();
        f.feed(b"{\"message\":{\"content\":\"a\"},\"done\":false}\n")
            .unwrap();
        assert!(matches!(f.finish(), Err(LlmError::BadReply(_))));
    }
}
