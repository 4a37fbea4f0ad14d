//! Ollama's native API: `POST /api/show` for capabilities, `GET /api/tags` for installed
//! models, and `POST /api/chat` streamed as NDJSON (content chunks, `tool_calls` in a
//! `done: false` chunk, a final `done: true` chunk with metrics, or an `{"error": …}` line).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::{Host, ParseError, Position, Url};

use super::llm::{
    LlmError, Message, ModelInfo, Reply, Role, Settings, error_message, transport_error,
};
use super::tools::{ToolSpec, as_object};

mod stream;
pub use stream::StreamFolder;

/// Tool-capable models suggested when none is installed.
const SUGGESTED: &str = "qwen3:8b, qwen2.5:7b, llama3.1:8b, llama3.2:3b, mistral-nemo";

/// Ollama's port when `OLLAMA_HOST` names no scheme.
const OLLAMA_PORT: u16 = 11434;

/// Read an address the way Ollama reads `OLLAMA_HOST`: without a scheme it is `http` on port
/// 11434 (`0.0.0.0`, `host`, `host:port`, `:port`, `::1`, `[::1]:port`); with `http://` or
/// `https://` the default port is 80 or 443. A listen-anywhere host (`0.0.0.0`, `[::]`) or
/// an empty one means this machine.
///
/// A port that is not one (`host:abc`, `host:99999`) is ignored, as Ollama ignores it.
pub fn normalize_url(raw: &str) -> String {
    let t = raw.trim();
    let (scheme, rest, default_port) = match t.split_once("://") {
        None => ("http".to_owned(), t, OLLAMA_PORT),
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            let port = if scheme == "https" { 443 } else { 80 };
            (scheme, rest, port)
        }
    };
    match read_address(rest) {
        Some((host, port, path)) => {
            format!("{scheme}://{host}:{}{path}", port.unwrap_or(default_port))
        }
        // Not an address: passed on as written, so the first request says what is wrong.
        None => format!("{scheme}://{rest}"),
    }
}

/// `host[:port][/path]` read by [`Url`]: the host (listen-anywhere made loopback), the port
/// if one was written, and the path without its trailing `/`.
fn read_address(rest: &str) -> Option<(Host, Option<u16>, String)> {
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    // Two forms Ollama takes that a URL cannot hold: a bare IPv6 address, and no host.
    let authority = if authority.parse::<Ipv6Addr>().is_ok() {
        format!("[{authority}]")
    } else if authority.is_empty() || authority.starts_with(':') {
        format!("{}{authority}", Ipv4Addr::LOCALHOST)
    } else {
        authority.to_owned()
    };
    // A scheme of no default port, so the port is kept as written (`http` would drop `:80`).
    let parse = |authority: &str| Url::parse(&format!("ollama-host://{authority}{path}"));
    let url = match parse(&authority) {
        Err(ParseError::InvalidPort) => parse(authority.rsplit_once(':')?.0),
        parsed => parsed,
    }
    .ok()?;
    // The host as `http` reads it (IPv4, IPv6 or a lowercase domain name).
    let host = match Host::parse(url.host_str()?).ok()? {
        Host::Ipv4(ip) if ip.is_unspecified() => Host::Ipv4(Ipv4Addr::LOCALHOST),
        Host::Ipv6(ip) if ip.is_unspecified() => Host::Ipv6(Ipv6Addr::LOCALHOST),
        host => host,
    };
    let path = url[Position::BeforePath..].trim_end_matches('/').to_owned();
    Some((host, url.port(), path))
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

/// What this client reads of `/api/show`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Show {
    /// `None` from an Ollama older than 0.6, which does not list them.
    capabilities: Option<Vec<String>>,
    model_info: Option<Map<String, Value>>,
}

impl Show {
    fn can(&self, capability: &str) -> bool {
        self.capabilities
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| c == capability))
    }

    /// `<architecture>.context_length` of `model_info`.
    fn context_length(&self) -> Option<u64> {
        self.model_info
            .as_ref()?
            .iter()
            .find(|(k, _)| k.ends_with(".context_length"))
            .and_then(|(_, v)| v.as_u64())
    }
}

/// What this client reads of `/api/tags`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Tags {
    models: Option<Vec<Tag>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Tag {
    name: Option<String>,
    model: Option<String>,
}

async fn show(
    http: &reqwest::Client,
    settings: &Settings,
    model: &str,
) -> Result<Result<Show, (u16, String)>, LlmError> {
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

/// Installed models that can call tools (asks `/api/show` of each, at most 40).
async fn installed_tool_models(http: &reqwest::Client, settings: &Settings) -> Vec<String> {
    let url = format!("{}/api/tags", settings.base_url);
    let Ok(response) = http.get(&url).send().await else {
        return Vec::new();
    };
    let Ok(tags) = response.json::<Tags>().await else {
        return Vec::new();
    };
    let names = tags
        .models
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.name.or(m.model));
    let mut capable = Vec::new();
    for name in names.take(40) {
        if let Ok(Ok(info)) = show(http, settings, &name).await
            && info.can("tools")
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
    if let Some(c) = &info.capabilities
        && !info.can("tools")
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
    if info.capabilities.is_none() {
        eprintln!(
            "warning: this Ollama does not report model capabilities (older than 0.6?); assuming {:?} can call tools",
            settings.model
        );
    }
    if settings.think && !info.can("thinking") {
        return Err(LlmError::NoTools(format!(
            "--think was given but model {:?} does not think (no `thinking` capability); drop --think or choose a thinking model such as qwen3",
            settings.model
        )));
    }
    Ok(ModelInfo {
        model: settings.model.clone(),
        context_length: info.context_length(),
        capabilities: info.capabilities,
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
    fn odd_ollama_host_forms() {
        assert_eq!(normalize_url(""), "http://127.0.0.1:11434");
        assert_eq!(normalize_url("http://"), "http://127.0.0.1:80");
        assert_eq!(normalize_url("http://:8080"), "http://127.0.0.1:8080");
        assert_eq!(
            normalize_url("  gpu-box:80  "),
            "http://gpu-box:80",
            "a port as written, even http's own"
        );
        assert_eq!(normalize_url("gpu-box:abc"), "http://gpu-box:11434");
        assert_eq!(normalize_url("gpu-box:99999"), "http://gpu-box:11434");
        assert_eq!(normalize_url("[::1]:abc"), "http://[::1]:11434");
        assert_eq!(normalize_url("https://box:8443"), "https://box:8443");
        assert_eq!(normalize_url("http://box:443"), "http://box:443");
        assert_eq!(normalize_url("HTTPS://box"), "https://box:443");
        assert_eq!(normalize_url("[::]:8080"), "http://[::1]:8080");
        assert_eq!(normalize_url("fe80::1"), "http://[fe80::1]:11434");
        assert_eq!(normalize_url("box/a/b/"), "http://box:11434/a/b");
        assert_eq!(normalize_url("box/ollama//"), "http://box:11434/ollama");
    }
}
