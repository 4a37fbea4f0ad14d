//! Running the binary's `chat` against the fake addon (or a Blender port) with a scripted
//! stdin, and what the run left.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::{BIN, FakeAddon, TempStore};

/// What a finished `chat` run left.
#[derive(Debug)]
pub struct ChatRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ChatRun {
    /// What a finished process left, echoed to the test's output for when it fails.
    pub fn from_output(out: std::process::Output) -> Self {
        let run = ChatRun {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "--- chat stdout ---\n{}--- chat stderr ---\n{}",
            run.stdout, run.stderr
        );
        run
    }
}

/// Run the binary's `chat` with `args` against the fake addon, stdin fed with `stdin` (a
/// pipe, so never a terminal). LLM-related environment variables of the caller are cleared.
pub async fn run_chat(fake: &FakeAddon, args: &[&str], stdin: &str) -> ChatRun {
    run_chat_port(fake.port, args, stdin).await
}

/// [`run_chat`] with Blender expected on `port`.
pub async fn run_chat_port(port: u16, args: &[&str], stdin: &str) -> ChatRun {
    run_chat_env(port, args, stdin, &[]).await
}

/// [`run_chat_port`] with environment variables set.
pub async fn run_chat_env(port: u16, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> ChatRun {
    use tokio::io::AsyncWriteExt;
    let port = port.to_string();
    let store = TempStore::new();
    let mut child = Command::new(BIN)
        .arg("chat")
        .args(["--blender-port", &port])
        .args(args)
        .env("BSM_STORE_PATH", &store.path)
        .env_remove("OLLAMA_HOST")
        .env_remove("OLLAMA_MODEL")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.as_bytes()).await.expect("write stdin");
    drop(pipe);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("chat finishes within a minute")
        .expect("chat runs");
    ChatRun::from_output(out)
}
