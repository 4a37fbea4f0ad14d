//! The person's side of `chat`: lines read from stdin (prompts and approvals), the approval
//! asked before model-written code runs, the progress spinner while the model works, and the
//! `--transcript` JSON-lines file.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Lines from the person (stdin, or anything readable in tests).
pub struct Input {
    lines: tokio::io::Lines<Box<dyn AsyncBufRead + Unpin + Send>>,
}

impl Input {
    /// Lines of `reader`.
    pub fn new(reader: impl AsyncBufRead + Unpin + Send + 'static) -> Self {
        let boxed: Box<dyn AsyncBufRead + Unpin + Send> = Box::new(reader);
        Input {
            lines: boxed.lines(),
        }
    }

    /// Lines of stdin.
    pub fn stdin() -> Self {
        Self::new(tokio::io::BufReader::new(tokio::io::stdin()))
    }

    /// The next line, `None` at end of input (or when it cannot be read).
    pub async fn line(&mut self) -> Option<String> {
        self.lines.next_line().await.ok().flatten()
    }
}

/// Whether model-written code may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalMode {
    /// Run without asking (`--yes`, or "all" answered once).
    Always,
    /// Show the code and ask each time.
    Ask,
    /// Nobody can be asked: never run code, and say why.
    Refuse(String),
}

/// The answer to one approval question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Run it.
    Run,
    /// Don't run it; tell the model.
    Decline,
    /// Stop the conversation.
    Quit,
    /// Not run because nobody could be asked (the reason).
    Refused(String),
}

impl ApprovalMode {
    /// The mode for these circumstances.
    pub fn for_terminal(yes: bool, stdin_is_terminal: bool) -> Self {
        if yes {
            ApprovalMode::Always
        } else if stdin_is_terminal {
            ApprovalMode::Ask
        } else {
            ApprovalMode::Refuse(
                "stdin is not a terminal and --yes was not given, so nobody can approve the Python code (or Blender command) the model wrote. \
                 Run chat in a terminal to approve each one, or pass --yes to let the model run code without asking."
                    .into(),
            )
        }
    }

    /// Ask (when asking is the mode) whether what `title` and `listing` show may run; they
    /// and the question go to `out`. Answering "all" switches the mode to
    /// [`ApprovalMode::Always`].
    pub async fn approve(
        &mut self,
        title: &str,
        listing: &str,
        input: &mut Input,
        out: &mut (dyn Write + Send),
    ) -> Approval {
        match self {
            ApprovalMode::Always => return Approval::Run,
            ApprovalMode::Refuse(reason) => return Approval::Refused(reason.clone()),
            ApprovalMode::Ask => {}
        }
        let _ = writeln!(out, "\n{title}");
        let _ = writeln!(out, "{listing}");
        loop {
            let _ = write!(out, "Run it? [y]es / [n]o / [a]ll (yes to all) / [q]uit: ");
            let _ = out.flush();
            let Some(answer) = input.line().await else {
                let _ = writeln!(out);
                return Approval::Quit;
            };
            match answer.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" => return Approval::Run,
                "n" | "no" => return Approval::Decline,
                "a" | "all" => {
                    *self = ApprovalMode::Always;
                    return Approval::Run;
                }
                "q" | "quit" | "exit" => return Approval::Quit,
                _ => {
                    let _ = writeln!(out, "Please answer y, n, a or q.");
                }
            }
        }
    }
}

/// `code` with line numbers, for showing before it runs.
pub fn listing(code: &str) -> String {
    let lines: Vec<&str> = code.lines().collect();
    let width = lines.len().max(1).to_string().len();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("  {:>width$} │ {l}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A spinner on stderr while the model works; invisible when stderr is not a terminal.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Start spinning with `message`.
    pub fn start(message: String) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar }
    }

    /// Update the message.
    pub fn set(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Remove the spinner.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// The `--transcript` file: one JSON object per line, each with `ts` and `event`. Clones
/// share the file, so the end of an interrupted chat is recorded too.
#[derive(Clone, Default)]
pub struct Transcript {
    file: Arc<Mutex<Option<std::io::BufWriter<std::fs::File>>>>,
}

impl Transcript {
    /// No transcript.
    pub fn none() -> Self {
        Transcript::default()
    }

    /// A transcript appended to `path`.
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Transcript {
            file: Arc::new(Mutex::new(Some(std::io::BufWriter::new(file)))),
        })
    }

    /// Record an event with its fields (written and flushed at once, so a crash loses
    /// nothing already recorded).
    pub fn record(&self, event: &str, fields: Value) {
        let mut guard = match self.file.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(file) = guard.as_mut() else { return };
        let mut line = json!({
            "ts": chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            "event": event,
        });
        if let (Value::Object(line), Value::Object(fields)) = (&mut line, fields) {
            line.extend(fields);
        }
        let written = serde_json::to_writer(&mut *file, &line)
            .map_err(std::io::Error::other)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.flush());
        if let Err(e) = written {
            eprintln!("warning: could not write the transcript ({e}); it stops here");
            *guard = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(mode: &mut ApprovalMode, answers: &'static str) -> (Approval, String) {
        let mut input = Input::new(tokio::io::BufReader::new(answers.as_bytes()));
        let mut out = Vec::new();
        let a = mode
            .approve("Run this?", &listing("print(1)"), &mut input, &mut out)
            .await;
        (a, String::from_utf8(out).unwrap())
    }

    #[tokio::test]
    async fn approval_answers() {
        let mut m = ApprovalMode::Ask;
        let (a, shown) = ask(&mut m, "y\n").await;
        assert_eq!(a, Approval::Run);
        assert!(shown.contains("1 │ print(1)"), "{shown}");
        assert_eq!(ask(&mut m, "no\n").await.0, Approval::Decline);
        assert_eq!(ask(&mut m, "maybe\nq\n").await.0, Approval::Quit);
        assert_eq!(
            ask(&mut m, "").await.0,
            Approval::Quit,
            "end of input quits"
        );
        assert_eq!(ask(&mut m, "a\n").await.0, Approval::Run);
        assert_eq!(m, ApprovalMode::Always, "yes to all sticks");
        assert_eq!(ask(&mut m, "").await.0, Approval::Run);
        let mut refuse = ApprovalMode::for_terminal(false, false);
        assert!(
            matches!(ask(&mut refuse, "y\n").await.0, Approval::Refused(r) if r.contains("--yes"))
        );
    }
}
