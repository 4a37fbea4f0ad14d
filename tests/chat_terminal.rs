//! `chat` with a person at a terminal: stdin is a real pseudo-terminal, so each piece of
//! model-written code is shown and must be approved (yes / no / all / quit); and Ctrl-C /
//! SIGTERM while the model is working ends the chat at once with its session closed.

mod support;

use std::io::Write;
use std::process::Stdio;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, TOOL_MODEL, Turn, calls, last_message, messages_with_role};
use support::{BIN, ChatRun, FakeAddon};

const CHAT: &str = "/api/chat";

/// Run `chat` with a pseudo-terminal as stdin, `answers` already typed into it.
async fn chat_at_terminal(fake: &FakeAddon, mock: &MockLlm, answers: &str) -> ChatRun {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let mut master = std::fs::File::from(pty.master);
    master
        .write_all(answers.as_bytes())
        .expect("type the answers");
    let port = fake.port.to_string();
    let store = support::TempStore::new();
    let child = tokio::process::Command::new(BIN)
        .args(["chat", "--blender-port", &port, "--ollama-url", &mock.url])
        .args(["--model", TOOL_MODEL, "do the thing"])
        .env_remove("OLLAMA_HOST")
        .env_remove("RUST_LOG")
        .env("BSM_STORE_PATH", &store.path)
        .stdin(Stdio::from(pty.slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start chat");
    let out = tokio::time::timeout(support::EVENT_WAIT, child.wait_with_output())
        .await
        .expect("chat finishes")
        .expect("chat runs");
    drop(master);
    ChatRun::from_output(out)
}

fn code_call(code: &str) -> Turn {
    calls(&[("execute_blender_code", json!({ "code": code }))])
}

/// Round 1 asks for a sphere; round 2 (after any answer) asks to print; then it answers.
fn two_scripts(body: &Value) -> Turn {
    match messages_with_role(body, "tool").len() {
        0 => code_call("bpy.ops.mesh.primitive_uv_sphere_add()\nprint('sphere')"),
        1 => code_call("print('second script ran')"),
        _ => Turn::Text("All done.".into()),
    }
}

#[tokio::test]
async fn each_script_is_shown_and_runs_only_when_approved() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(two_scripts).await;
    let run = chat_at_terminal(&fake, &mock, "n\ny\n").await;
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout.trim(), "All done.");
    assert_eq!(
        run.stderr.matches("Run it? [y]es / [n]o / [a]ll").count(),
        2
    );
    assert!(
        run.stderr
            .contains("1 │ bpy.ops.mesh.primitive_uv_sphere_add()"),
        "code shown"
    );
    assert!(
        run.stderr
            .contains("✗ execute_blender_code · declined by you")
    );
    assert!(run.stderr.contains("✓ execute_blender_code · "));

    let bodies = mock.bodies(CHAT);
    assert_eq!(bodies.len(), 3);
    let declined = last_message(&bodies[1])["content"].as_str().unwrap();
    assert!(
        declined.contains("the user declined"),
        "the model is told: {declined}"
    );
    assert_eq!(
        last_message(&bodies[2])["content"].as_str().unwrap().trim(),
        "second script ran"
    );
    assert!(
        !bodies[2]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Sphere"),
        "the declined script did not run"
    );
}

#[tokio::test]
async fn yes_to_all_asks_once() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(two_scripts).await;
    let run = chat_at_terminal(&fake, &mock, "a\n").await;
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stderr.matches("Run it?").count(), 1, "{}", run.stderr);
    assert_eq!(run.stderr.matches("✓ execute_blender_code").count(), 2);
}

#[tokio::test]
async fn quit_stops_without_running_anything() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(two_scripts).await;
    let run = chat_at_terminal(&fake, &mock, "q\n").await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("you chose quit"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert_eq!(mock.bodies(CHAT).len(), 1, "the model was not asked again");
    assert!(!run.stderr.contains("✓ execute_blender_code"));
}

#[tokio::test]
async fn sigterm_while_the_model_works_ends_the_chat_and_closes_its_session() {
    let mut fake = FakeAddon::start().await;
    let mut mock = MockLlm::start(|_| Turn::Hang).await;
    let port = fake.port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("t.jsonl");
    let store = support::TempStore::new();
    let child = tokio::process::Command::new(BIN)
        .args([
            "chat",
            "--yes",
            "--blender-port",
            &port,
            "--ollama-url",
            &mock.url,
        ])
        .args(["--model", TOOL_MODEL, "hello", "--transcript"])
        .arg(&transcript)
        .env_remove("OLLAMA_HOST")
        .env("BSM_STORE_PATH", &store.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start chat");
    mock.wait_requests(CHAT, 1).await;
    assert_eq!(
        fake.count("closed").await,
        0,
        "the chat's Blender connection is open"
    );
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    let out = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("exits promptly on SIGTERM")
        .expect("runs");
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    fake.wait_count("closed", 1).await;
    let text = std::fs::read_to_string(&transcript).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "end", "the transcript is closed off: {text}");
    assert_eq!(last["exit"], 130);
}
