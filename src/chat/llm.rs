//! The conversation as the chat keeps it (messages, tool calls, a model's reply) and the
//! client for the two HTTP dialects local LLM servers speak: Ollama's native `/api/chat`
//! ([`super::ollama`]) and the OpenAI-compatible `/v1/chat/completions` ([`super::openai`]).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::tools::ToolSpec;
use super::{ollama, openai};

/// One tool call a model made.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call id, when the server gave one (OpenAI always does; Ollama 0.12+ does).
    pub id: Option<String>,
    /// The tool name.
    pub name: String,
    /// The arguments as the model sent them (an object, or a string holding one).
    pub arguments: Value,
}

/// A tool call as both dialects send it: `{"id"?, "function": {"name", "arguments"}}` (Ollama
/// adds `function.index`, OpenAI `type`; neither is read).
#[derive(Debug, Deserialize)]
pub(super) struct WireCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

impl WireCall {
    /// The call, or `None` when it names no function; `no_arguments` stands in for arguments
    /// that are missing or `null`.
    pub(super) fn into_tool_call(self, no_arguments: impl FnOnce() -> Value) -> Option<ToolCall> {
        let function = self.function?;
        Some(ToolCall {
            id: self.id,
            name: function.name?,
            arguments: function.arguments.unwrap_or_else(no_arguments),
        })
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions and the current scene.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
}

impl Role {
    /// The role's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// The text.
    pub content: String,
    /// Tool calls the assistant made in this message.
    pub tool_calls: Vec<ToolCall>,
    /// The assistant's reasoning (thinking models), sent back with its tool calls.
    pub thinking: String,
    /// For a tool result: the tool's name.
    pub tool_name: Option<String>,
    /// For a tool result: the id of the call it answers.
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message with text only.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            thinking: String::new(),
            tool_name: None,
            tool_call_id: None,
        }
    }

    /// The result of `call`.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Message {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            thinking: String::new(),
            tool_name: Some(call.name.clone()),
            tool_call_id: call.id.clone(),
        }
    }

    /// The message as a JSON object for the transcript.
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::json!({"role": self.role.as_str(), "content": self.content});
        if !self.tool_calls.is_empty() {
            m["tool_calls"] = self
                .tool_calls
                .iter()
                .map(|c| serde_json::json!({"id": c.id, "name": c.name, "arguments": c.arguments}))
                .collect();
        }
        if !self.thinking.is_empty() {
            m["thinking"] = Value::String(self.thinking.clone());
        }
        if let Some(name) = &self.tool_name {
            m["tool_name"] = Value::String(name.clone());
        }
        if let Some(id) = &self.tool_call_id {
            m["tool_call_id"] = Value::String(id.clone());
        }
        m
    }
}

/// A model's answer to one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// The text.
    pub content: String,
    /// Reasoning text, for thinking models.
    pub thinking: String,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Tokens of the prompt, as the server counted them.
    pub prompt_tokens: Option<u64>,
    /// Tokens generated.
    pub output_tokens: Option<u64>,
    /// Why the model stopped (`stop`, `length`, `tool_calls`, …).
    pub done_reason: Option<String>,
}

/// What the server says about the model.
#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    /// The model name to use.
    pub model: String,
    /// Capabilities (`completion`, `tools`, `thinking`, `vision`, …) when the server lists them.
    pub capabilities: Option<Vec<String>>,
    /// The model's trained context length, when known.
    pub context_length: Option<u64>,
}

/// Errors talking to the LLM server.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Nothing answered at the URL.
    #[error(
        "cannot reach the LLM server at {url}: {reason}. Is it running? (Ollama: `ollama serve`; set the address with --ollama-url or OLLAMA_HOST, or --base-url for --api openai)"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an HTTP error.
    #[error("the LLM server answered {status} to {url}: {message}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// The model does not exist on the server.
    #[error("model {model:?} is not available on {url}: {message}. {hint}")]
    NoModel {
        /// The model name.
        model: String,
        /// The server URL.
        url: String,
        /// The server's message.
        message: String,
        /// What to do.
        hint: String,
    },
    /// The model cannot call tools.
    #[error("{0}")]
    NoTools(String),
    /// The server reported an error in the middle of its answer.
    #[error("the model stopped with an error: {0}")]
    MidStream(String),
    /// The server sent something that is not the dialect's format.
    #[error("the LLM server sent an answer that could not be read: {0}")]
    BadReply(String),
    /// No output for too long.
    #[error(
        "the LLM server sent nothing for {0:?}; the model may still be loading or be too slow for this machine (raise --llm-timeout)"
    )]
    Timeout(Duration),
}

/// Which dialect to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// Ollama's native API: `/api/chat` (streamed NDJSON) and `/api/show`.
    Ollama,
    /// The OpenAI-compatible `/v1/chat/completions` (llama.cpp server, LM Studio, vLLM,
    /// Ollama's `/v1`).
    Openai,
}

impl Api {
    /// The dialect's name, as `--api` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Api::Ollama => "ollama",
            Api::Openai => "openai",
        }
    }
}

/// Request settings shared by both dialects.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Server base URL (`http://127.0.0.1:11434` for Ollama, `…/v1` for OpenAI).
    pub base_url: String,
    /// Model name (may be empty for OpenAI servers serving one model).
    pub model: String,
    /// Bearer token for OpenAI-compatible servers.
    pub api_key: Option<String>,
    /// Ollama `options.num_ctx`.
    pub num_ctx: u32,
    /// Send `think: true` (Ollama).
    pub think: bool,
    /// Sampling temperature, when set.
    pub temperature: Option<f32>,
    /// Longest wait for the next bytes from the server.
    pub idle_timeout: Duration,
}

/// A client for one LLM server.
#[derive(Debug, Clone)]
pub struct LlmClient {
    api: Api,
    http: reqwest::Client,
    settings: Settings,
    info: ModelInfo,
}

impl LlmClient {
    /// A client; nothing is sent until [`LlmClient::check_model`] or [`LlmClient::chat`].
    pub fn new(api: Api, mut settings: Settings) -> Result<Self, LlmError> {
        settings.base_url = settings.base_url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(settings.idle_timeout)
            .build()
            .map_err(|e| LlmError::Unreachable {
                url: settings.base_url.clone(),
                reason: e.to_string(),
            })?;
        let info = ModelInfo {
            model: settings.model.clone(),
            ..ModelInfo::default()
        };
        Ok(LlmClient {
            api,
            http,
            settings,
            info,
        })
    }

    /// The dialect.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What is known about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Check the model exists and can call tools (Ollama: `/api/show` capabilities), or pick
    /// the only model an OpenAI-compatible server serves when none was named.
    pub async fn check_model(&mut self) -> Result<&ModelInfo, LlmError> {
        self.info = match self.api {
            Api::Ollama => ollama::check_model(&self.http, &self.settings).await?,
            Api::Openai => openai::check_model(&self.http, &self.settings).await?,
        };
        self.settings.model = self.info.model.clone();
        Ok(&self.info)
    }

    /// Send the conversation with the tools; `progress` is told how many characters of
    /// answer have arrived so far.
    pub async fn chat(
        &self,
        messages: &[Message],
        tools: &[ToolSpec],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<Reply, LlmError> {
        match self.api {
            Api::Ollama => {
                ollama::chat(&self.http, &self.settings, messages, tools, progress).await
            }
            Api::Openai => openai::chat(&self.http, &self.settings, messages, tools).await,
        }
    }
}

/// Turn a reqwest error into an [`LlmError`].
pub(super) fn transport_error(url: &str, e: reqwest::Error, idle: Duration) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout(idle)
    } else if e.is_connect() {
        LlmError::Unreachable {
            url: url.to_owned(),
            reason: root_cause(&e),
        }
    } else {
        LlmError::BadReply(root_cause(&e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// The `error` message of an error body: `{"error": "…"}` or `{"error": {"message": "…"}}`,
/// else the body itself (cut short).
pub(super) fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let from_json = parsed.as_ref().and_then(|v| match v.get("error") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    });
    from_json.unwrap_or_else(|| {
        let t = body.trim();
        if t.is_empty() {
            "(empty body)".to_owned()
        } else {
            t.chars().take(500).collect()
        }
    })
}
