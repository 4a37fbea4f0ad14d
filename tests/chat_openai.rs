//! `chat --api openai` against a mock OpenAI-compatible server (`/v1/chat/completions`,
//! string arguments, `tool_call_id`) and the fake addon: the same essentials as the Ollama
//! dialect.

mod support;

use serde_json::{Value, json};
use support::mock_llm::{
    MockLlm, PLAIN_MODEL, TOOL_MODEL, Turn, calls, last_message, messages_with_role, tool_names,
};
use support::{FakeAddon, run_chat};

const COMPLETIONS: &str = "/v1/chat/completions";

fn openai_args(base: &str, model: Option<&'static str>, extra: &[&'static str]) -> Vec<String> {
    let mut args = vec![
        "--api".to_owned(),
        "openai".into(),
        "--base-url".into(),
        base.to_owned(),
    ];
    if let Some(m) = model {
        args.extend(["--model".to_owned(), m.to_owned()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

async fn chat(fake: &FakeAddon, args: &[String], stdin: &str) -> support::ChatRun {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run_chat(fake, &refs, stdin).await
}

#[tokio::test]
async fn code_runs_and_its_result_answers_the_call_by_id() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        let last = last_message(body);
        if last["role"] == "user" {
            calls(&[(
                "execute_blender_code",
                json!({"code": "bpy.ops.mesh.primitive_plane_add(size=4)\nprint('made', bpy.context.active_object.name)"}),
            )])
        } else {
            Turn::Text(format!("Result: {}", last["content"].as_str().unwrap().trim()))
        }
    })
    .await;
    // No --model: the server's only model is used.
    let base = format!("{}/v1", mock.url);
    let run = chat(
        &fake,
        &openai_args(&base, None, &["--yes", "add a plane"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout.trim(), "Result: made Plane");
    assert!(
        run.stderr.contains("✓ execute_blender_code · "),
        "{}",
        run.stderr
    );

    let bodies = mock.bodies(COMPLETIONS);
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["model"], TOOL_MODEL, "picked from GET /v1/models");
    assert_eq!(bodies[0]["stream"], false);
    assert_eq!(
        tool_names(&bodies[0]),
        ["get_scene_info", "execute_blender_code", "get_object_info"]
    );
    let assistant = messages_with_role(&bodies[1], "assistant");
    let call = &assistant[0]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert!(
        call["function"]["arguments"].is_string(),
        "OpenAI arguments are a JSON string"
    );
    let tool = messages_with_role(&bodies[1], "tool");
    assert_eq!(tool.len(), 1);
    assert_eq!(
        tool[0]["tool_call_id"], call["id"],
        "the result answers the call by id"
    );
    assert_eq!(tool[0]["content"].as_str().unwrap().trim(), "made Plane");
}

#[tokio::test]
async fn two_calls_in_one_turn_are_each_answered_by_their_id() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        if last_message(body)["role"] == "user" {
            calls(&[
                ("get_object_info", json!({"name": "Camera"})),
                ("execute_blender_code", json!({"code": "print('second')"})),
            ])
        } else {
            Turn::Text("Both.".into())
        }
    })
    .await;
    let base = format!("{}/v1", mock.url);
    let run = chat(
        &fake,
        &openai_args(&base, Some(TOOL_MODEL), &["--yes", "two"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    let bodies = mock.bodies(COMPLETIONS);
    let ids: Vec<Value> = messages_with_role(&bodies[1], "assistant")[0]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    let tools = messages_with_role(&bodies[1], "tool");
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["tool_call_id"], ids[0]);
    assert!(
        tools[0]["content"]
            .as_str()
            .unwrap()
            .contains("\"name\": \"Camera\"")
    );
    assert_eq!(tools[1]["tool_call_id"], ids[1]);
    assert_eq!(tools[1]["content"].as_str().unwrap().trim(), "second");
}

#[tokio::test]
async fn a_call_written_as_text_runs_and_gets_an_id() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        if last_message(body)["role"] == "user" {
            Turn::Text("```json\n{\"name\": \"execute_blender_code\", \"parameters\": {\"code\": \"print(2 ** 10)\"}}\n```".into())
        } else {
            Turn::Text(last_message(body)["content"].as_str().unwrap().trim().to_owned())
        }
    })
    .await;
    let base = format!("{}/v1", mock.url);
    let run = chat(
        &fake,
        &openai_args(&base, Some(TOOL_MODEL), &["--yes", "2^10"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout.trim(), "1024");
    let bodies = mock.bodies(COMPLETIONS);
    let call = &messages_with_role(&bodies[1], "assistant")[0]["tool_calls"][0];
    let id = call["id"].as_str().unwrap();
    assert!(
        !id.is_empty(),
        "a text call gets an id so its result can answer it"
    );
    assert_eq!(
        messages_with_role(&bodies[1], "tool")[0]["tool_call_id"],
        id
    );
}

#[tokio::test]
async fn a_repeated_call_loop_is_broken() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| calls(&[("get_scene_info", json!({}))])).await;
    let base = format!("{}/v1", mock.url);
    let run = chat(
        &fake,
        &openai_args(&base, Some(TOOL_MODEL), &["--yes", "scene?"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("kept repeating the same get_scene_info call"),
        "{}",
        run.stderr
    );
    assert_eq!(mock.bodies(COMPLETIONS).len(), 3);
    let bodies = mock.bodies(COMPLETIONS);
    let told = messages_with_role(&bodies[2], "tool");
    assert!(
        told.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .contains("Do not repeat it"),
        "the model was told before being stopped"
    );
}

#[tokio::test]
async fn a_model_without_tools_is_rejected_clearly() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Text("never".into())).await;
    let base = format!("{}/v1", mock.url);
    let run = chat(
        &fake,
        &openai_args(&base, Some(PLAIN_MODEL), &["--yes", "hi"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("does not support tools")
            && run.stderr.contains("must support tool calling")
            && run.stderr.contains("--jinja"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_server_error_is_reported() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Error {
        before: String::new(),
        message: "CUDA error: out of memory".into(),
    })
    .await;
    let base = format!("{}/v1", mock.url);
    let run = chat(
        &fake,
        &openai_args(&base, Some(TOOL_MODEL), &["--yes", "hi"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("500") && run.stderr.contains("CUDA error: out of memory"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[tokio::test]
async fn string_arguments_are_coerced() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        if last_message(body)["role"] == "user" {
            // The whole arguments string, with the number as text inside it.
            calls(&[("get_session_history", json!("{\"limit\": \"1\"}"))])
        } else {
            Turn::Text("ok".into())
        }
    })
    .await;
    let base = format!("{}/v1", mock.url);
    let run = chat(
        &fake,
        &openai_args(
            &base,
            Some(TOOL_MODEL),
            &["--yes", "--tools", "get_session_history", "h"],
        ),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    let bodies = mock.bodies(COMPLETIONS);
    let result = messages_with_role(&bodies[1], "tool")[0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let history: Value = serde_json::from_str(&result).unwrap_or_else(|e| panic!("{e}: {result}"));
    assert_eq!(history["entries"].as_array().unwrap().len(), 1);
}
