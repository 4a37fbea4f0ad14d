//! `chat` against a mock Ollama (`support::mock_llm`) and the fake addon: what stops a chat
//! or warns about it. The loop breaker on repeated calls, the round cap, a conversation near
//! the context size (estimated and as Ollama counts it), a model that cannot call tools or
//! think, an error in the middle of the stream, an answer cut off at the length limit, and
//! Blender, the LLM server or a tool that is not there. The conversation itself is in
//! `chat_ollama.rs`.

mod support;

use serde_json::json;
use support::mock_llm::ollama::{CHAT, ollama_args};
use support::mock_llm::{MockLlm, PLAIN_MODEL, TOOL_MODEL, Turn, calls, messages_with_role};
use support::{FakeAddon, run_chat};

#[tokio::test]
async fn a_repeated_identical_call_is_refused_once_then_the_chat_stops() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| calls(&[("get_object_info", json!({"name": "Cube"}))])).await;
    let run = run_chat(
        &fake,
        &ollama_args(&mock, &["--yes", "look at the cube"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(1), "a stopped prompt is a failure");
    assert!(
        run.stderr
            .contains("kept repeating the same get_object_info call"),
        "{}",
        run.stderr
    );
    let bodies = mock.bodies(CHAT);
    assert_eq!(
        bodies.len(),
        3,
        "call, repeat (told), repeat again (stopped)"
    );
    let told = messages_with_role(&bodies[2], "tool");
    assert!(
        told.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .contains("Do not repeat it"),
        "the model was told before being stopped"
    );
    assert_eq!(
        run.stderr.matches("✓ get_object_info").count(),
        1,
        "ran once"
    );
}

#[tokio::test]
async fn rounds_are_capped() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        let n = body["messages"].as_array().unwrap().len();
        calls(&[(
            "execute_blender_code",
            json!({"code": format!("print({n})")}),
        )])
    })
    .await;
    let run = run_chat(
        &fake,
        &ollama_args(&mock, &["--yes", "--max-rounds", "3", "loop"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("stopped after 3 rounds"),
        "{}",
        run.stderr
    );
    assert_eq!(mock.bodies(CHAT).len(), 3);
}

#[tokio::test]
async fn a_model_without_tools_is_rejected_before_any_chat() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Text("never".into())).await;
    let url = mock.url.clone();
    let run = run_chat(
        &fake,
        &["--ollama-url", &url, "--model", PLAIN_MODEL, "--yes", "hi"],
        "",
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains(&format!("model \"{PLAIN_MODEL}\" cannot call tools"))
            && run.stderr.contains("capabilities: completion")
            && run.stderr.contains(TOOL_MODEL),
        "names the installed tool-capable model: {}",
        run.stderr
    );
    assert!(mock.bodies(CHAT).is_empty(), "no chat request was sent");

    let run = run_chat(
        &fake,
        &["--ollama-url", &url, "--model", "nope:1b", "--yes", "hi"],
        "",
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("ollama pull nope:1b"), "{}", run.stderr);

    let run = run_chat(&fake, &["--ollama-url", &url, "--yes", "hi"], "").await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("no model chosen") && run.stderr.contains(TOOL_MODEL),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_error_in_the_middle_of_the_stream_is_reported() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Error {
        before: "Let me".into(),
        message: "model runner has unexpectedly stopped, this may be due to resource limitations"
            .into(),
    })
    .await;
    let run = run_chat(&fake, &ollama_args(&mock, &["--yes", "hi"]), "").await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("the model stopped with an error: model runner has unexpectedly stopped"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "no partial answer passed off as the answer"
    );
}

#[tokio::test]
async fn blender_unreachable_is_a_clear_error_before_the_model_is_asked() {
    let mock = MockLlm::start(|_| Turn::Text("never".into())).await;
    let url = mock.url.clone();
    let run = support::run_chat_port(
        support::closed_port(),
        &["--ollama-url", &url, "--model", TOOL_MODEL, "--yes", "hi"],
        "",
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("Blender is not usable") && run.stderr.contains("Troubleshooting"),
        "{}",
        run.stderr
    );
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn a_conversation_near_num_ctx_is_warned_about() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Text("fine".into())).await;
    let run = run_chat(
        &fake,
        &ollama_args(&mock, &["--yes", "--num-ctx", "512", "hi"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    assert_eq!(mock.bodies(CHAT)[0]["options"]["num_ctx"], 512);
    assert!(
        run.stderr.contains("warning: the conversation is about")
            && run.stderr.contains("512-token context (--num-ctx)")
            && run.stderr.contains("the model supports up to 32768"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.matches("warning:").count(), 1, "warned once");

    let quiet = run_chat(&fake, &ollama_args(&mock, &["--yes", "hi"]), "").await;
    assert!(
        !quiet.stderr.contains("warning:"),
        "no warning at 8192: {}",
        quiet.stderr
    );
}

#[tokio::test]
async fn think_needs_a_thinking_model() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Text("never".into())).await;
    let run = run_chat(&fake, &ollama_args(&mock, &["--yes", "--think", "hi"]), "").await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("does not think"), "{}", run.stderr);
    assert!(mock.bodies(CHAT).is_empty());
}

#[tokio::test]
async fn the_token_count_ollama_reports_is_watched_too() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Text("fine".into())).await;
    mock.set_prompt_tokens(3500);
    let run = run_chat(
        &fake,
        &ollama_args(&mock, &["--yes", "--num-ctx", "4096", "hi"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    assert!(
        run.stderr
            .contains("about 3500 tokens of the model's 4096-token context"),
        "warned from Ollama's own count, not the estimate: {}",
        run.stderr
    );
}

#[tokio::test]
async fn a_repeat_after_moving_on_is_warned_again_not_stopped() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| match messages_with_role(body, "tool").len() {
        0 | 1 => calls(&[("execute_blender_code", json!({"code": "print('a')"}))]),
        2 | 3 => calls(&[("execute_blender_code", json!({"code": "print('b')"}))]),
        _ => Turn::Text("done".into()),
    })
    .await;
    let run = run_chat(&fake, &ollama_args(&mock, &["--yes", "go"]), "").await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "done");
    assert_eq!(
        run.stderr
            .matches("not run (same call as just before)")
            .count(),
        2
    );
    assert_eq!(run.stderr.matches("✓ execute_blender_code").count(), 2);
}

#[tokio::test]
async fn an_answer_cut_off_at_the_length_limit_is_not_passed_off_as_the_answer() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Truncated("The scene has a cube, a cam".into())).await;
    let run = run_chat(&fake, &ollama_args(&mock, &["--yes", "describe"]), "").await;
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("cut off at its length limit") && run.stderr.contains("a cube, a cam"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_unreachable_llm_server_and_an_unknown_tool_are_clear_errors() {
    let fake = FakeAddon::start().await;
    let closed = format!("http://127.0.0.1:{}", support::closed_port());
    let run = run_chat(
        &fake,
        &[
            "--ollama-url",
            &closed,
            "--model",
            TOOL_MODEL,
            "--yes",
            "hi",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("cannot reach the LLM server at")
            && run.stderr.contains("ollama serve"),
        "{}",
        run.stderr
    );

    let mock = MockLlm::start(|_| Turn::Text("never".into())).await;
    let run = run_chat(
        &fake,
        &ollama_args(&mock, &["--tools", "get_scene_info,make_coffee", "hi"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(2), "a bad flag value");
    assert!(
        run.stderr
            .contains("unknown tool(s) in --tools: make_coffee")
            && run.stderr.contains("execute_blender_code"),
        "lists what is available: {}",
        run.stderr
    );
    assert!(mock.requests().is_empty());
}
