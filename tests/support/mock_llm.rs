//! A mock LLM server for the `chat` tests, faithful to the documented wire formats:
//!
//! * Ollama: `POST /api/show` (details, `model_info` with the context length,
//!   `capabilities`; 404 `{"error": …}` for an unknown model), `GET /api/tags`, and
//!   `POST /api/chat` answered as a stream of NDJSON chunks (`Content-Type:
//!   application/x-ndjson`, chunked): content pieces with `done: false`, tool calls in a
//!   `done: false` chunk (with `id` and `function.index`), a final `done: true` chunk with
//!   `done_reason` and the metrics, or an `{"error": …}` line in the middle of the stream.
//! * OpenAI: `GET /v1/models` and `POST /v1/chat/completions` answered with a
//!   `chat.completion` object (tool call arguments as JSON strings, `finish_reason`,
//!   `usage`), or an `{"error": {"message", "type", "code"}}` body with an HTTP error status.
//!
//! What the "model" says is a script: a function of the request body. Every request is
//! recorded (path and body) for the tests to inspect.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What the scripted model answers to one request.
#[derive(Debug, Clone)]
pub enum Turn {
    /// A text answer (streamed in pieces for Ollama).
    Text(String),
    /// Tool calls: `(name, arguments)`; arguments are an object (sent as a string to OpenAI
    /// clients unless already a string).
    Calls(Vec<(String, Value)>),
    /// Some text, then an error in the middle of the stream (Ollama), or an HTTP 500 error
    /// body (OpenAI).
    Error { before: String, message: String },
    /// An HTTP error status with this JSON body.
    Status(u16, Value),
    /// Never answer (a model that hangs).
    Hang,
    /// Text cut off at the length limit (`done_reason: "length"`).
    Truncated(String),
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub body: Value,
}

type Script = Arc<dyn Fn(&Value) -> Turn + Send + Sync>;

#[derive(Clone)]
struct MockState {
    /// Installed models and their capabilities.
    models: Arc<Vec<(String, Vec<String>)>>,
    script: Script,
    requests: Arc<Mutex<Vec<Recorded>>>,
    calls_made: Arc<Mutex<u64>>,
    recorded: tokio::sync::watch::Sender<usize>,
    prompt_tokens: Arc<AtomicU64>,
}

/// A running mock server.
pub struct MockLlm {
    /// `http://127.0.0.1:PORT` (Ollama base; OpenAI base is `{url}/v1`).
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    recorded: tokio::sync::watch::Receiver<usize>,
    prompt_tokens: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const TOOL_MODEL: &str = "qwen-mock:7b";
pub const PLAIN_MODEL: &str = "gemma-mock:2b";
pub const THINKING_MODEL: &str = "thinker-mock:8b";

impl MockLlm {
    /// A server with a tool-capable model (`TOOL_MODEL`) and one without tools
    /// (`PLAIN_MODEL`), answering with `script`.
    pub async fn start(script: impl Fn(&Value) -> Turn + Send + Sync + 'static) -> Self {
        let state = MockState {
            models: Arc::new(vec![
                (
                    TOOL_MODEL.to_owned(),
                    vec!["completion".to_owned(), "tools".to_owned()],
                ),
                (PLAIN_MODEL.to_owned(), vec!["completion".to_owned()]),
                (
                    THINKING_MODEL.to_owned(),
                    vec![
                        "completion".to_owned(),
                        "tools".to_owned(),
                        "thinking".to_owned(),
                    ],
                ),
            ]),
            script: Arc::new(script),
            requests: Arc::new(Mutex::new(Vec::new())),
            calls_made: Arc::new(Mutex::new(0)),
            recorded: tokio::sync::watch::channel(0).0,
            prompt_tokens: Arc::new(AtomicU64::new(342)),
        };
        let prompt_tokens = state.prompt_tokens.clone();
        let requests = state.requests.clone();
        let recorded = state.recorded.subscribe();
        let app = Router::new()
            .route("/api/show", post(show))
            .route("/api/tags", get(tags))
            .route("/api/chat", post(ollama_chat))
            .route("/v1/models", get(openai_models))
            .route("/v1/chat/completions", post(openai_chat))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock LLM");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockLlm {
            url,
            requests,
            recorded,
            prompt_tokens,
            task,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The `prompt_eval_count` / `prompt_tokens` reported from now on (default 342).
    pub fn set_prompt_tokens(&self, n: u64) {
        self.prompt_tokens.store(n, Ordering::SeqCst);
    }

    /// Wait until `n` requests to `path` have arrived (signalled by each one).
    pub async fn wait_requests(&mut self, path: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + super::EVENT_WAIT;
        while self.bodies(path).len() < n {
            tokio::time::timeout_at(deadline, self.recorded.changed())
                .await
                .expect("the request arrives")
                .expect("the mock is running");
        }
    }

    /// Bodies of the requests to `path`.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.body)
            .collect()
    }
}

fn record(state: &MockState, path: &str, body: &Value) {
    let n = {
        let mut list = state.requests.lock().unwrap();
        list.push(Recorded {
            path: path.to_owned(),
            body: body.clone(),
        });
        list.len()
    };
    state.recorded.send_replace(n);
}

fn json_response(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn capabilities(state: &MockState, model: &str) -> Option<Vec<String>> {
    state
        .models
        .iter()
        .find(|(name, _)| name == model)
        .map(|(_, caps)| caps.clone())
}

async fn show(State(state): State<MockState>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    record(&state, "/api/show", &body);
    let model = body["model"].as_str().unwrap_or_default();
    match capabilities(&state, model) {
        Some(caps) => json_response(
            200,
            json!({
                "modelfile": "# Modelfile generated by \"ollama show\"\nFROM /models/blob\n",
                "parameters": "stop \"<|im_end|>\"",
                "template": "{{ .Messages }}",
                "details": {"parent_model": "", "format": "gguf", "family": "qwen2",
                            "families": ["qwen2"], "parameter_size": "7.6B",
                            "quantization_level": "Q4_K_M"},
                "model_info": {"general.architecture": "qwen2",
                               "general.parameter_count": 7615616512u64,
                               "qwen2.context_length": 32768},
                "capabilities": caps,
                "modified_at": "2026-11-01T10:00:00.000000000Z"
            }),
        ),
        None => json_response(404, json!({"error": format!("model '{model}' not found")})),
    }
}

async fn tags(State(state): State<MockState>) -> Response {
    record(&state, "/api/tags", &Value::Null);
    let models: Vec<Value> = state
        .models
        .iter()
        .map(|(name, _)| {
            json!({"name": name, "model": name, "modified_at": "2026-11-01T10:00:00Z",
                   "size": 4683087332u64, "digest": "sha256:0123456789abcdef",
                   "details": {"format": "gguf", "family": "qwen2"}})
        })
        .collect();
    json_response(200, json!({"models": models}))
}

const CREATED_AT: &str = "2026-11-25T10:00:00.123456789Z";

fn chunk(model: &str, message: Value) -> Value {
    json!({"model": model, "created_at": CREATED_AT, "message": message, "done": false})
}

fn done_chunk(model: &str, prompt_tokens: u64) -> Value {
    json!({
        "model": model, "created_at": CREATED_AT,
        "message": {"role": "assistant", "content": ""},
        "done": true, "done_reason": "stop",
        "total_duration": 4_883_583_458u64, "load_duration": 1_334_875u64,
        "prompt_eval_count": prompt_tokens, "prompt_eval_duration": 342_546_000u64,
        "eval_count": 24, "eval_duration": 1_535_342_000u64
    })
}

/// Split text into a few pieces at character boundaries, as a model streams tokens.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(chars.len().div_ceil(3).max(1))
        .map(|c| c.iter().collect())
        .collect()
}

fn ndjson(lines: Vec<Value>) -> Response {
    let stream = futures::stream::iter(
        lines
            .into_iter()
            .map(|l| Ok::<_, Infallible>(Bytes::from(format!("{l}\n")))),
    );
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn next_call_id(state: &MockState) -> String {
    let mut n = state.calls_made.lock().unwrap();
    *n += 1;
    format!("call_{:08x}", 0x5eed_0000u64 + *n)
}

async fn ollama_chat(State(state): State<MockState>, body: String) -> Response {
    let body: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return json_response(400, json!({"error": format!("invalid JSON: {e}")})),
    };
    record(&state, "/api/chat", &body);
    if let Err(problem) = check_ollama_request(&body) {
        return json_response(400, json!({ "error": problem }));
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let Some(caps) = capabilities(&state, &model) else {
        return json_response(
            404,
            json!({"error": format!("model \"{model}\" not found, try pulling it first")}),
        );
    };
    if body
        .get("tools")
        .is_some_and(|t| t.as_array().is_some_and(|a| !a.is_empty()))
        && !caps.iter().any(|c| c == "tools")
    {
        return json_response(
            400,
            json!({"error": format!("registry.ollama.ai/library/{model} does not support tools")}),
        );
    }
    match (state.script)(&body) {
        Turn::Text(text) => {
            let mut lines: Vec<Value> = pieces(&text)
                .into_iter()
                .map(|p| chunk(&model, json!({"role": "assistant", "content": p})))
                .collect();
            lines.push(done_chunk(
                &model,
                state.prompt_tokens.load(Ordering::SeqCst),
            ));
            ndjson(lines)
        }
        Turn::Calls(calls) => {
            let calls: Vec<Value> = calls
                .into_iter()
                .enumerate()
                .map(|(i, (name, arguments))| {
                    json!({"id": next_call_id(&state),
                           "function": {"index": i, "name": name, "arguments": arguments}})
                })
                .collect();
            ndjson(vec![
                chunk(
                    &model,
                    json!({"role": "assistant", "content": "", "tool_calls": calls}),
                ),
                done_chunk(&model, state.prompt_tokens.load(Ordering::SeqCst)),
            ])
        }
        Turn::Error { before, message } => {
            let mut lines: Vec<Value> = pieces(&before)
                .into_iter()
                .map(|p| chunk(&model, json!({"role": "assistant", "content": p})))
                .collect();
            lines.push(json!({"error": message}));
            ndjson(lines)
        }
        Turn::Status(status, body) => json_response(status, body),
        Turn::Hang => std::future::pending().await,
        Turn::Truncated(text) => {
            let mut done = done_chunk(&model, state.prompt_tokens.load(Ordering::SeqCst));
            done["done_reason"] = json!("length");
            ndjson(vec![
                chunk(&model, json!({"role": "assistant", "content": text})),
                done,
            ])
        }
    }
}

async fn openai_models(State(state): State<MockState>) -> Response {
    record(&state, "/v1/models", &Value::Null);
    let data: Vec<Value> = state
        .models
        .iter()
        .take(1)
        .map(|(name, _)| json!({"id": name, "object": "model", "created": 1_764_000_000, "owned_by": "library"}))
        .collect();
    json_response(200, json!({"object": "list", "data": data}))
}

async fn openai_chat(State(state): State<MockState>, body: String) -> Response {
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

/// What Ollama's request types accept (its Go structs reject the rest with HTTP 400).
fn check_ollama_request(body: &Value) -> Result<(), String> {
    let messages = body["messages"]
        .as_array()
        .ok_or("messages must be an array")?;
    for m in messages {
        let role = m["role"].as_str().unwrap_or_default();
        if !["system", "user", "assistant", "tool"].contains(&role) {
            return Err(format!("invalid role {role:?}"));
        }
        if !m["content"].is_string() && !m["content"].is_null() {
            return Err("json: cannot unmarshal into Go struct field Message.messages.content of type string".into());
        }
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            if !call["function"]["arguments"].is_object() {
                return Err(format!(
                    "json: cannot unmarshal {} into Go struct field ToolCallFunction.messages.tool_calls.function.arguments of type api.ToolCallFunctionArguments",
                    call["function"]["arguments"]
                ));
            }
        }
    }
    for tool in body["tools"].as_array().into_iter().flatten() {
        if tool["type"] != "function" || !tool["function"]["name"].is_string() {
            return Err(format!("invalid tool {tool}"));
        }
    }
    if !body["options"]["num_ctx"].is_null() && !body["options"]["num_ctx"].is_u64() {
        return Err("option \"num_ctx\" must be an integer".into());
    }
    Ok(())
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

/// Tool calls by name and arguments.
pub fn calls(list: &[(&str, Value)]) -> Turn {
    Turn::Calls(
        list.iter()
            .map(|(n, a)| ((*n).to_owned(), a.clone()))
            .collect(),
    )
}

/// The last message of a request.
pub fn last_message(body: &Value) -> &Value {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .unwrap_or(&Value::Null)
}

/// The messages of a request with this role.
pub fn messages_with_role<'a>(body: &'a Value, role: &str) -> Vec<&'a Value> {
    body["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == role).collect())
        .unwrap_or_default()
}

/// The names of the tools a request offered.
pub fn tool_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
