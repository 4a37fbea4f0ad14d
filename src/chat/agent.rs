//! The conversation loop of one prompt: refresh the scene in the system prompt, ask the
//! model, run the tool calls it makes (made properly or written as text) in order, answer
//! each, and stop at an answer, at `--max-rounds`, or when the model repeats itself.

use crate::mcp::names;
use std::io::Write;

use serde_json::{Map, Value, json};

use super::console::{Approval, ApprovalMode, Input, Progress, Transcript, listing};
use super::llm::{Api, LlmClient, LlmError, Message, Role, ToolCall};
use super::prompt::{describe_scene, instructions};
use super::text_calls::calls_in_text;
use super::tools::{BlenderTools, CODE_TOOL, ToolOutcome, ToolSpec, as_object, coerce_arguments};

/// Longest tool result text passed to the model; longer output is cut in the middle.
const MAX_RESULT_CHARS: usize = 12_000;

/// How a prompt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The model answered.
    Answered(String),
    /// The chat stopped the model (round cap, repeated call); the reason.
    Stopped(String),
    /// The person chose quit at an approval question.
    Quit,
    /// Code was not run because nobody could approve it; the reason.
    Refused(String),
}

/// A conversation with the model, driving Blender through the MCP tools.
pub struct Agent {
    llm: LlmClient,
    tools: BlenderTools,
    specs: Vec<ToolSpec>,
    approval: ApprovalMode,
    transcript: Transcript,
    max_rounds: usize,
    history: Vec<Message>,
    calls_made: usize,
    context_warned: bool,
    instructions: String,
}

impl Agent {
    /// A conversation offering `specs`.
    pub fn new(
        llm: LlmClient,
        tools: BlenderTools,
        specs: Vec<ToolSpec>,
        approval: ApprovalMode,
        transcript: Transcript,
        max_rounds: usize,
    ) -> Self {
        Agent {
            llm,
            tools,
            approval,
            transcript,
            max_rounds: max_rounds.max(1),
            history: Vec::new(),
            calls_made: 0,
            context_warned: false,
            instructions: instructions(&specs),
            specs,
        }
    }

    /// The model in use.
    pub fn model(&self) -> &str {
        &self.llm.info().model
    }

    /// The MCP tools (to close them when done).
    pub fn into_tools(self) -> BlenderTools {
        self.tools
    }

    /// The transcript.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// The system prompt with the current scene, read from Blender now.
    async fn system_prompt(&self) -> String {
        let scene = self.tools.call(names::GET_SCENE_INFO, Map::new()).await;
        format!("{}\n\n{}", self.instructions, describe_scene(&scene))
    }

    fn push(&mut self, message: Message) {
        self.transcript
            .record("message", json!({"message": message.to_json()}));
        self.history.push(message);
    }

    /// Run one prompt to its end. `Err` only for a failure talking to the model.
    pub async fn prompt(
        &mut self,
        text: &str,
        input: &mut Input,
        err: &mut (dyn Write + Send),
    ) -> Result<Outcome, LlmError> {
        self.push(Message::text(Role::User, text));
        let mut last_call: Option<(String, String)> = None;
        let mut repeat_warned = false;
        for round in 1..=self.max_rounds {
            let system = Message::text(Role::System, self.system_prompt().await);
            self.transcript
                .record("system", json!({"round": round, "content": system.content}));
            let mut messages = Vec::with_capacity(self.history.len() + 1);
            messages.push(system);
            messages.extend(self.history.iter().cloned());
            self.warn_if_context_nears(&messages, None, err);

            let progress = Progress::start(format!("{} is thinking…", self.llm.info().model));
            let update = |chars: usize| {
                if chars > 0 {
                    progress.set(format!(
                        "{} is answering… {chars} characters",
                        self.llm.info().model
                    ));
                }
            };
            let reply = self.llm.chat(&messages, &self.specs, &update).await;
            progress.finish();
            let reply = reply?;
            self.transcript.record(
                "reply",
                json!({
                    "round": round,
                    "content": reply.content,
                    "thinking": reply.thinking,
                    "tool_calls": reply.tool_calls.len(),
                    "prompt_tokens": reply.prompt_tokens,
                    "output_tokens": reply.output_tokens,
                    "done_reason": reply.done_reason,
                }),
            );
            self.warn_if_context_nears(&messages, reply.prompt_tokens, err);

            let (content, mut calls, as_text) = if reply.tool_calls.is_empty() {
                match calls_in_text(&reply.content, &self.specs) {
                    Some((rest, calls)) => (rest, calls, true),
                    None => (reply.content.clone(), Vec::new(), false),
                }
            } else {
                (reply.content.clone(), reply.tool_calls.clone(), false)
            };
            for call in calls.iter_mut() {
                // What runs is what the history shows: arguments coerced to the schema, always
                // an object (Ollama rejects a string there in the next request).
                call.arguments = match self.specs.iter().find(|s| s.name == call.name) {
                    Some(spec) => Value::Object(coerce_arguments(spec, &call.arguments)),
                    None => Value::Object(as_object(&call.arguments)),
                };
                if self.llm.api() == Api::Openai && call.id.is_none() {
                    self.calls_made += 1;
                    call.id = Some(format!("call_bsm_{}", self.calls_made));
                }
            }
            let truncated = reply.done_reason.as_deref() == Some("length");
            self.push(Message {
                tool_calls: calls.clone(),
                thinking: reply.thinking.clone(),
                ..Message::text(Role::Assistant, content.clone())
            });
            if calls.is_empty() {
                let answer = content.trim();
                if truncated {
                    return Ok(Outcome::Stopped(format!(
                        "stopped: the model's answer was cut off at its length limit (raise --num-ctx, or ask for less). What it wrote: {answer}"
                    )));
                }
                return Ok(Outcome::Answered(if answer.is_empty() {
                    "(the model gave an empty answer)".to_owned()
                } else {
                    answer.to_owned()
                }));
            }

            let mut pending = calls.iter();
            while let Some(call) = pending.next() {
                // Arguments are objects by now, so their text identifies the call.
                let key = (call.name.clone(), call.arguments.to_string());
                if last_call.as_ref() == Some(&key) {
                    if repeat_warned {
                        let reason = format!(
                            "stopped: the model kept repeating the same {} call instead of answering",
                            call.name
                        );
                        self.answer(call, format!("Not run: {reason}."));
                        self.answer_rest(pending, "Not run: the conversation was stopped.");
                        let _ = writeln!(err, "  ✗ {} · not run (repeated again)", call.name);
                        return Ok(Outcome::Stopped(reason));
                    }
                    repeat_warned = true;
                    let _ = writeln!(
                        err,
                        "  ✗ {} · not run (same call as just before)",
                        call.name
                    );
                    self.answer(
                        call,
                        format!(
                            "Not run: you just made exactly this {} call; its result is above and repeating it will not change it. Do not repeat it: use that result to answer the user, or do something different.",
                            call.name
                        ),
                    );
                    continue;
                }
                // A different call: the model moved on, so a later repeat is warned anew.
                repeat_warned = false;
                last_call = Some(key);
                match self.run_call(call, as_text, input, err).await {
                    Some(stop) => {
                        self.answer_rest(pending, "Not run: the conversation was stopped.");
                        return Ok(stop);
                    }
                    None => continue,
                }
            }
        }
        Ok(Outcome::Stopped(format!(
            "stopped after {} rounds: the model was still calling tools. Ask for less at once, or raise --max-rounds.",
            self.max_rounds
        )))
    }

    /// Run one call (asking first for code); `Some` when the conversation must stop.
    async fn run_call(
        &mut self,
        call: &ToolCall,
        as_text: bool,
        input: &mut Input,
        err: &mut (dyn Write + Send),
    ) -> Option<Outcome> {
        if !self.specs.iter().any(|s| s.name == call.name) {
            let offered: Vec<&str> = self.specs.iter().map(|s| s.name.as_str()).collect();
            let _ = writeln!(err, "  ✗ {} · unknown tool", call.name);
            self.answer(
                call,
                format!(
                    "Error: there is no tool named {:?}. Use one of: {}.",
                    call.name,
                    offered.join(", ")
                ),
            );
            return None;
        }
        // Already coerced to the schema when the reply was read.
        let arguments = as_object(&call.arguments);
        match proposal(&call.name, &arguments) {
            None => {}
            Some(Err(problem)) => {
                let _ = writeln!(err, "  ✗ {} · bad arguments", call.name);
                self.answer(call, format!("Error: {problem}"));
                return None;
            }
            Some(Ok((title, listing))) => {
                match self.approval.approve(&title, &listing, input, err).await {
                    Approval::Run => {}
                    Approval::Decline => {
                        let _ = writeln!(err, "  ✗ {} · declined by you", call.name);
                        self.transcript.record(
                            "tool",
                            json!({"name": call.name, "arguments": arguments, "approved": false}),
                        );
                        self.answer(
                            call,
                            "Not run: the user declined this. Ask what they want instead, or propose something else.",
                        );
                        return None;
                    }
                    Approval::Quit => {
                        self.answer(call, "Not run: the user ended the conversation.");
                        return Some(Outcome::Quit);
                    }
                    Approval::Refused(reason) => {
                        let _ = writeln!(err, "\n{title}\n{listing}");
                        self.answer(call, format!("Not run: {reason}"));
                        return Some(Outcome::Refused(reason));
                    }
                }
            }
        }
        let outcome = self.tools.call(&call.name, arguments.clone()).await;
        let _ = writeln!(err, "{}", summary(&call.name, &outcome, as_text));
        self.transcript.record(
            "tool",
            json!({
                "name": call.name,
                "id": call.id,
                "arguments": arguments,
                "written_as_text": as_text,
                "ok": outcome.ok,
                "duration_ms": outcome.duration.as_secs_f64() * 1e3,
                "result": outcome.text,
            }),
        );
        let content = result_for_model(&call.name, &outcome);
        self.answer(call, content);
        None
    }

    fn answer(&mut self, call: &ToolCall, content: impl Into<String>) {
        self.push(Message::tool_result(call, content));
    }

    fn answer_rest<'a>(&mut self, rest: impl Iterator<Item = &'a ToolCall>, why: &str) {
        for call in rest {
            self.answer(call, why);
        }
    }

    /// Warn once when the conversation nears `--num-ctx` (Ollama cuts the oldest part of a
    /// prompt that does not fit, tools first).
    fn warn_if_context_nears(
        &mut self,
        messages: &[Message],
        counted: Option<u64>,
        err: &mut (dyn Write + Send),
    ) {
        if self.context_warned || self.llm.api() != Api::Ollama {
            return;
        }
        let num_ctx = u64::from(self.llm.settings().num_ctx);
        let estimate = counted.unwrap_or_else(|| {
            let chars: usize = messages.iter().map(|m| m.content.len() + 16).sum::<usize>()
                + self
                    .specs
                    .iter()
                    .map(|s| s.as_function().to_string().len())
                    .sum::<usize>();
            (chars / 4) as u64
        });
        if estimate * 10 >= num_ctx * 8 {
            self.context_warned = true;
            let _ = writeln!(
                err,
                "warning: the conversation is about {estimate} tokens of the model's {num_ctx}-token context (--num-ctx); Ollama silently drops what does not fit. Raise --num-ctx{} or start a new chat.",
                self.llm
                    .info()
                    .context_length
                    .map(|c| format!(" (the model supports up to {c})"))
                    .unwrap_or_default()
            );
        }
    }
}

/// Tools a person approves before they run: they change Blender in ways the model chose.
const APPROVED_TOOLS: &[&str] = &[CODE_TOOL, names::BLENDER_COMMAND];

/// For a tool that needs approval, what to show: `(title, listing)`, or why the arguments
/// cannot be run (answered to the model without asking anyone). `None`: no approval needed.
fn proposal(
    name: &str,
    arguments: &Map<String, Value>,
) -> Option<Result<(String, String), String>> {
    if !APPROVED_TOOLS.contains(&name) {
        return None;
    }
    if name == CODE_TOOL {
        return Some(match arguments.get("code").and_then(Value::as_str) {
            Some(code) if !code.trim().is_empty() => Ok((
                "The model wants to run this Python code in Blender:".to_owned(),
                listing(code),
            )),
            _ => Err(format!(
                "{CODE_TOOL} needs its arguments as an object with the Python source in \"code\", e.g. {{\"code\": \"print(bpy.data.objects.keys())\"}}."
            )),
        });
    }
    let pretty = serde_json::to_string_pretty(&Value::Object(arguments.clone()))
        .unwrap_or_else(|_| format!("{arguments:?}"));
    Some(Ok((
        format!("The model wants to send this {name} to Blender:"),
        listing(&pretty),
    )))
}

/// The one-line summary of a tool call shown on the terminal.
pub fn summary(name: &str, outcome: &ToolOutcome, as_text: bool) -> String {
    let how = if as_text { " (written as text)" } else { "" };
    let took = shown_duration(outcome.duration);
    if outcome.ok {
        format!("  ✓ {name}{how} · {took} · ok")
    } else {
        let first = outcome.text.lines().next().unwrap_or_default();
        let first: String = first.chars().take(120).collect();
        format!("  ✗ {name}{how} · {took} · error: {first}")
    }
}

/// `7 ms`, `1.24 s`.
fn shown_duration(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis().max(1))
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The tool message the model reads.
fn result_for_model(name: &str, outcome: &ToolOutcome) -> String {
    let text = if outcome.text.trim().is_empty() && name == CODE_TOOL {
        "(the code ran and printed nothing; print() what you need to see)".to_owned()
    } else {
        cut_middle(&outcome.text, MAX_RESULT_CHARS)
    };
    if outcome.ok {
        text
    } else {
        format!("Error: {text}")
    }
}

fn cut_middle(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max * 2 / 3).collect();
    let tail: String = text.chars().skip(count - max / 3).collect();
    format!(
        "{head}\n… ({} characters cut) …\n{tail}",
        count - max * 2 / 3 - max / 3
    )
}
