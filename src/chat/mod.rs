//! `chat`: plain language → Blender through a local LLM. The chat is an MCP client of this
//! crate's own server, in process, so the model sees exactly the tools (names, descriptions,
//! schemas) every MCP client sees and its calls run in the chat's own session of the
//! registry.
//!
//! - [`tools`]: the tool set offered (from the server's list), schema simplification,
//!   argument coercion; [`text_calls`]: tool calls written as text.
//! - [`llm`], [`ollama`], [`openai`]: the conversation types and the two HTTP dialects.
//! - [`agent`]: the loop of one prompt (rounds, repeated-call breaker, approvals);
//!   [`prompt`]: its system prompt.
//! - [`console`]: stdin lines, approval questions, the spinner, the transcript.

pub mod agent;
pub mod console;
pub mod llm;
pub mod ollama;
pub mod openai;
pub mod prompt;
pub mod text_calls;
pub mod tools;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::headless::{SpawnConfig, ensure_running};
use crate::mcp::errors::troubleshooting;
use crate::mcp::names;
use crate::session::{Registry, RegistryConfig};
use agent::{Agent, Outcome};
use console::{ApprovalMode, Input, Transcript};
use llm::{LlmClient, LlmError};
use tools::BlenderTools;

/// What `chat` needs, as plain values (the CLI maps its flags onto this).
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// The request; empty: one request per line from stdin.
    pub prompt: Vec<String>,
    /// Which HTTP API the LLM server speaks.
    pub api: llm::Api,
    /// The LLM request settings.
    pub llm: llm::Settings,
    /// Tools offered to the model (names, or `all`).
    pub tools: Vec<String>,
    /// Most model requests per prompt.
    pub max_rounds: u16,
    /// Run the model's code without asking.
    pub yes: bool,
    /// Append the exchange to this file as JSON lines.
    pub transcript: Option<PathBuf>,
    /// The chat's own registry (its Blender, timeouts and limits).
    pub registry: RegistryConfig,
    /// Where its sessions are kept.
    pub store: crate::store::open::StoreConfig,
    /// Start a headless Blender when nothing listens on the target, with these settings.
    pub spawn: Option<SpawnConfig>,
}

/// Errors setting the chat up.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// A flag's value cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The LLM server or model cannot be used.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// Blender cannot be reached.
    #[error("{0}")]
    Blender(String),
    /// Something inside this program failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Exit status: the prompt(s) were answered.
pub const EXIT_OK: i32 = 0;
/// Exit status: a failure (LLM, Blender, a stopped or refused prompt).
pub const EXIT_FAILED: i32 = 1;
/// Exit status: a flag cannot be used.
pub const EXIT_USAGE: i32 = 2;
/// Exit status: interrupted (Ctrl-C / SIGTERM).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Run `chat` until its prompt is answered, or stdin ends; returns the exit status. `stop`
/// (Ctrl-C / SIGTERM) ends it at once, closing the session.
pub async fn run(args: ChatConfig, stop: CancellationToken) -> i32 {
    let target = args.registry.default_target.clone();
    let spawned = if let Some(spawn) = &args.spawn {
        match ensure_running(&target, || spawn.options(&target)).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: --spawn-blender could not start Blender: {e}");
                return EXIT_FAILED;
            }
        }
    } else {
        None
    };
    let store = match args.store.open().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(blender) = spawned {
                let _ = blender.stop(Duration::from_secs(10)).await;
            }
            return EXIT_FAILED;
        }
    };
    let backend = std::sync::Arc::new(args.registry.classic_backend());
    let registry = Registry::with_store(args.registry.clone(), backend, store);
    let code = match open_transcript(&args) {
        Err(e) => fail(&e),
        Ok(transcript) => {
            let code = tokio::select! {
                code = converse(&args, registry.clone(), transcript.clone()) => code,
                _ = stop.cancelled() => {
                    eprintln!("\ninterrupted");
                    EXIT_INTERRUPTED
                }
            };
            transcript.record("end", serde_json::json!({ "exit": code }));
            code
        }
    };
    registry.shutdown().await;
    if let Some(blender) = spawned {
        let _ = blender.stop(Duration::from_secs(10)).await;
    }
    code
}

fn fail(e: &ChatError) -> i32 {
    eprintln!("error: {e}");
    match e {
        ChatError::Usage(_) => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

fn open_transcript(args: &ChatConfig) -> Result<Transcript, ChatError> {
    match &args.transcript {
        Some(path) => Transcript::open(path).map_err(|e| {
            ChatError::Usage(format!(
                "cannot open the transcript file {}: {e}",
                path.display()
            ))
        }),
        None => Ok(Transcript::none()),
    }
}

async fn converse(args: &ChatConfig, registry: Registry, transcript: Transcript) -> i32 {
    let tools = match BlenderTools::start(registry).await {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let code = match prepare(args, &tools).await {
        Ok((llm, specs)) => {
            let stdin_tty = std::io::stdin().is_terminal();
            let approval = ApprovalMode::for_terminal(args.yes, stdin_tty);
            let mut agent = Agent::new(
                llm,
                tools,
                specs,
                approval,
                transcript,
                usize::from(args.max_rounds),
            );
            let code = dialogue(args, &mut agent, stdin_tty).await;
            agent.into_tools().close().await;
            return code;
        }
        Err(e) => fail(&e),
    };
    tools.close().await;
    code
}

/// Check Blender, the tools and the model before the first prompt.
async fn prepare(
    args: &ChatConfig,
    tools: &BlenderTools,
) -> Result<(LlmClient, Vec<tools::ToolSpec>), ChatError> {
    let specs = tools::select(tools.all(), &args.tools)?;
    let scene = tools
        .call(names::GET_SCENE_INFO, serde_json::Map::new())
        .await;
    if !scene.ok {
        // The tool's message is written for a model ("call the tool again"); a person gets
        // its first sentence and the troubleshooting steps.
        let first = scene.text.split(". ").next().unwrap_or_default();
        return Err(ChatError::Blender(format!(
            "Blender is not usable: {first}.\n\n{}",
            troubleshooting(&args.registry.default_target)
        )));
    }
    let mut llm = LlmClient::new(args.api, args.llm.clone())?;
    llm.check_model().await?;
    Ok((llm, specs))
}

async fn dialogue(args: &ChatConfig, agent: &mut Agent, stdin_tty: bool) -> i32 {
    let mut input = Input::stdin();
    let model = agent.model().to_owned();
    agent.transcript().record(
        "start",
        serde_json::json!({"model": model, "api": args.api.name(), "tools": args.tools}),
    );
    if !args.prompt.is_empty() {
        let prompt = args.prompt.join(" ");
        return one_prompt(agent, &prompt, &mut input).await.0;
    }
    if stdin_tty {
        eprintln!(
            "Chatting with {model} about the open Blender scene. One request per line; /quit or Ctrl-D ends."
        );
    }
    loop {
        if stdin_tty {
            eprint!("\n› ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = input.line().await else {
            return EXIT_OK;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if matches!(line, "/quit" | "/exit" | "/q") {
            return EXIT_OK;
        }
        let (code, quit) = one_prompt(agent, line, &mut input).await;
        if quit {
            return if stdin_tty { EXIT_OK } else { code };
        }
        // Read from a pipe, a failed request ends the run (a script should see it);
        // in a terminal the person reads the error and goes on.
        if code != EXIT_OK && !stdin_tty {
            return code;
        }
    }
}

/// One prompt: print the answer on stdout, or why it stopped on stderr. Returns the exit
/// status and whether the conversation must end.
async fn one_prompt(agent: &mut Agent, prompt: &str, input: &mut Input) -> (i32, bool) {
    let mut err = std::io::stderr();
    match agent.prompt(prompt, input, &mut err).await {
        Ok(Outcome::Answered(answer)) => {
            println!("{answer}");
            (EXIT_OK, false)
        }
        Ok(Outcome::Stopped(why)) => {
            eprintln!("chat {why}");
            (EXIT_FAILED, false)
        }
        Ok(Outcome::Quit) => {
            eprintln!("chat ended: you chose quit; that code was not run.");
            (EXIT_FAILED, true)
        }
        Ok(Outcome::Refused(why)) => {
            eprintln!("chat refused to run the model's code: {why}");
            (EXIT_FAILED, true)
        }
        Err(e) => {
            eprintln!("error: {e}");
            (EXIT_FAILED, false)
        }
    }
}
