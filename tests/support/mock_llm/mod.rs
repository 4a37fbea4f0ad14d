//! A mock LLM server for the `chat` tests, faithful to the documented wire formats of Ollama
//! ([`ollama`]: `/api/show`, `/api/tags`, streaming `/api/chat`) and of OpenAI-compatible
//! servers ([`openai`]: `/v1/models`, `/v1/chat/completions`), on one port.
//!
//! What the "model" says is a script: a function of the request body. Every request is
//! recorded (path and body) for the tests to inspect. This module owns the server, its
//! state and the helpers for writing scripts and reading requests.

pub mod ollama;
mod openai;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

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
            .route("/api/show", post(ollama::show))
            .route("/api/tags", get(ollama::tags))
            .route("/api/chat", post(ollama::ollama_chat))
            .route("/v1/models", get(openai::openai_models))
            .route("/v1/chat/completions", post(openai::openai_chat))
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

fn next_call_id(state: &MockState) -> String {
    let mut n = state.calls_made.lock().unwrap();
    *n += 1;
    format!("call_{:08x}", 0x5eed_0000u64 + *n)
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
