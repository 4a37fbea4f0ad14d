//! `chat` against a mock Ollama (`support::mock_llm`, NDJSON streaming as documented) and the
//! fake addon (which really runs the Python against a mock `bpy`): the code a model asks
//! for runs in Blender and its output reaches the model in the next request. This file owns
//! the conversation: tool calls run and answered (several in a turn, written as text, with
//! arguments coerced to the schema), approval of code and commands, prompts from a pipe,
//! the instructions and tools offered, `--think`, and flags and environment naming Ollama
//! and the model. What stops or warns is in `chat_ollama_limits.rs`.

mod support;

use serde_json::{Value, json};
use support::mock_llm::ollama::{CHAT, ollama_args};
use support::mock_llm::{
    MockLlm, THINKING_MODEL, TOOL_MODEL, Turn, calls, last_message, messages_with_role, tool_names,
};
use support::{FakeAddon, run_chat};

/// The mock model: add a cube when asked, then answer from the tool result.
fn cube_script(body: &Value) -> Turn {
    let last = last_message(body);
    if last["role"] == "user" {
        calls(&[(
            "execute_blender_code",
            json!({"code": "bpy.ops.mesh.primitive_cube_add(location=(0, 0, 1))\nprint('added', bpy.context.active_object.name)"}),
        )])
    } else {
        Turn::Text(format!(
            "Done: {}.",
            last["content"].as_str().unwrap_or("").trim()
        ))
    }
}

#[tokio::test]
async fn code_the_model_asks_for_runs_in_blender_and_its_output_reaches_the_model() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(cube_script).await;
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("chat.jsonl");
    let transcript_arg = transcript.to_string_lossy().into_owned();
    let run = run_chat(
        &fake,
        &ollama_args(
            &mock,
            &["--yes", "--transcript", &transcript_arg, "add a cube"],
        ),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0), "exit status");
    assert_eq!(
        run.stdout.trim(),
        "Done: added Cube.001.",
        "the final answer on stdout"
    );
    let summary = run
        .stderr
        .lines()
        .find(|l| l.starts_with("  ✓ execute_blender_code · "))
        .unwrap_or_else(|| panic!("one-line summary of the call: {}", run.stderr));
    let parts: Vec<&str> = summary.trim().split(" · ").collect();
    assert_eq!(parts.len(), 3, "name · duration · outcome: {summary}");
    assert!(
        parts[1].ends_with(" ms") || parts[1].ends_with(" s"),
        "{summary}"
    );
    assert_eq!(parts[2], "ok");

    // Capabilities were checked before the first chat request.
    let paths: Vec<String> = mock.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.first().map(String::as_str), Some("/api/show"));
    let bodies = mock.bodies(CHAT);
    assert_eq!(
        bodies.len(),
        2,
        "one request for the call, one for the answer"
    );

    let first = &bodies[0];
    assert_eq!(first["stream"], true);
    assert_eq!(first["think"], false, "thinking is off unless --think");
    assert_eq!(first["options"]["num_ctx"], 8192);
    assert_eq!(
        tool_names(first),
        ["get_scene_info", "execute_blender_code", "get_object_info"],
        "the curated default tool set, in --tools order"
    );
    for tool in first["tools"].as_array().unwrap() {
        let params = &tool["function"]["parameters"];
        assert_eq!(params["type"], "object");
        assert!(
            params["properties"].is_object(),
            "properties always present: {tool}"
        );
        assert!(
            params["properties"].get("session_id").is_none(),
            "the chat's own session is not the model's business: {tool}"
        );
        assert!(!tool.to_string().contains("$ref") && !tool.to_string().contains("$schema"));
    }
    let system = &first["messages"][0];
    assert_eq!(system["role"], "system");
    let scene = system["content"].as_str().unwrap();
    assert!(
        scene.contains("- Cube (MESH)") && scene.contains("Selected: Cube"),
        "the scene and selection are in the system prompt: {scene}"
    );

    // The tool result reached the model in the next request, answering the call.
    let second = &bodies[1];
    let tool_msgs = messages_with_role(second, "tool");
    assert_eq!(tool_msgs.len(), 1);
    assert_eq!(tool_msgs[0]["tool_name"], "execute_blender_code");
    assert_eq!(
        tool_msgs[0]["content"].as_str().unwrap().trim(),
        "added Cube.001"
    );
    let assistant = messages_with_role(second, "assistant");
    let call_id = assistant[0]["tool_calls"][0]["id"].as_str().unwrap();
    assert_eq!(tool_msgs[0]["tool_call_id"], call_id, "answered by call id");
    assert!(
        assistant[0]["tool_calls"][0]["function"]["arguments"].is_object(),
        "Ollama takes arguments as an object"
    );
    // The scene was read again for the next turn: the new cube is in the system prompt.
    let refreshed = second["messages"][0]["content"].as_str().unwrap();
    assert!(
        refreshed.contains("- Cube.001 (MESH) at (0, 0, 1)")
            && refreshed.contains("Active object: Cube.001"),
        "{refreshed}"
    );

    // The transcript holds the whole exchange as JSON lines.
    let lines: Vec<Value> = std::fs::read_to_string(&transcript)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(events.first(), Some(&"start"));
    assert_eq!(events.last(), Some(&"end"));
    let tool = lines
        .iter()
        .find(|l| l["event"] == "tool")
        .expect("tool event");
    assert_eq!(tool["name"], "execute_blender_code");
    assert_eq!(tool["ok"], true);
    assert!(tool["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(lines.iter().all(|l| l["ts"].is_string()));
    assert!(lines.iter().any(|l| l["event"] == "message"
        && l["message"]["role"] == "assistant"
        && l["message"]["content"] == "Done: added Cube.001."),);
}

#[tokio::test]
async fn two_tool_calls_in_one_turn_run_in_order_and_are_both_answered() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        if last_message(body)["role"] == "user" {
            calls(&[
                ("execute_blender_code", json!({"code": "print('first')"})),
                ("get_object_info", json!({"name": "Cube"})),
            ])
        } else {
            Turn::Text("Both done.".into())
        }
    })
    .await;
    let run = run_chat(&fake, &ollama_args(&mock, &["--yes", "do two things"]), "").await;
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout.trim(), "Both done.");
    let bodies = mock.bodies(CHAT);
    assert_eq!(bodies.len(), 2);
    let tools = messages_with_role(&bodies[1], "tool");
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["tool_name"], "execute_blender_code");
    assert_eq!(tools[0]["content"].as_str().unwrap().trim(), "first");
    assert_eq!(tools[1]["tool_name"], "get_object_info");
    assert!(
        tools[1]["content"]
            .as_str()
            .unwrap()
            .contains("\"name\": \"Cube\"")
    );
    let first_summary = run
        .stderr
        .find("✓ execute_blender_code")
        .expect("summary 1");
    let second_summary = run.stderr.find("✓ get_object_info").expect("summary 2");
    assert!(
        first_summary < second_summary,
        "in the order the model gave"
    );
}

#[tokio::test]
async fn a_tool_call_written_as_text_is_recognised_and_run() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        if last_message(body)["role"] == "user" {
            Turn::Text(
                "I'll compute it.\n<tool_call>\n{\"name\": \"execute_blender_code\", \"arguments\": \"{\\\"code\\\": \\\"print(6 * 7)\\\"}\"}\n</tool_call>".into(),
            )
        } else {
            Turn::Text(format!("The answer is {}.", last_message(body)["content"].as_str().unwrap().trim()))
        }
    })
    .await;
    let run = run_chat(
        &fake,
        &ollama_args(&mock, &["--yes", "what is 6*7 in Blender?"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout.trim(), "The answer is 42.");
    assert!(
        run.stderr
            .contains("✓ execute_blender_code (written as text)"),
        "{}",
        run.stderr
    );
    let bodies = mock.bodies(CHAT);
    let assistant = messages_with_role(&bodies[1], "assistant");
    assert_eq!(
        assistant[0]["tool_calls"][0]["function"]["name"], "execute_blender_code",
        "sent back as a proper call so the model sees what it did"
    );
    assert_eq!(assistant[0]["content"], "I'll compute it.");
    assert_eq!(
        assistant[0]["tool_calls"][0]["function"]["arguments"],
        json!({"code": "print(6 * 7)"}),
        "arguments written as a JSON string go back as the object Ollama requires"
    );
}

#[tokio::test]
async fn string_arguments_are_coerced_to_the_schema_types() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        if last_message(body)["role"] == "user" {
            calls(&[("get_session_history", json!({"limit": "1"}))])
        } else {
            Turn::Text("ok".into())
        }
    })
    .await;
    let run = run_chat(
        &fake,
        &ollama_args(
            &mock,
            &[
                "--yes",
                "--tools",
                "get_scene_info,get_session_history",
                "history",
            ],
        ),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    let bodies = mock.bodies(CHAT);
    let limit = &bodies[0]["tools"][1]["function"]["parameters"]["properties"]["limit"];
    assert_eq!(
        limit["type"], "integer",
        "nullable type simplified: {limit}"
    );
    let result = messages_with_role(&bodies[1], "tool")[0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let history: Value = serde_json::from_str(&result).unwrap_or_else(|e| panic!("{e}: {result}"));
    assert_eq!(
        history["entries"].as_array().unwrap().len(),
        1,
        "\"1\" was sent as 1"
    );
}

#[tokio::test]
async fn without_yes_and_without_a_terminal_no_code_runs() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(cube_script).await;
    let run = run_chat(&fake, &ollama_args(&mock, &["add a cube"]), "y\n").await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("refused to run the model's code")
            && run.stderr.contains("stdin is not a terminal")
            && run.stderr.contains("--yes"),
        "says why and what to do: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 │ bpy.ops.mesh.primitive_cube_add"),
        "the code is shown"
    );
    assert_eq!(mock.bodies(CHAT).len(), 1, "the chat stopped there");
    // Blender was not changed: no new cube.
    let registry = support::registry(&fake);
    let id = registry.create_session(None).await.unwrap();
    let call = blender_session_mcp::session::Call::new("test");
    let scene = registry
        .scene_info(
            &id,
            &call,
            blender_session_mcp::backend::SceneQuery::default(),
        )
        .await
        .unwrap();
    assert!(
        !scene.objects.iter().any(|o| o.name == "Cube.001"),
        "{scene:?}"
    );
    registry.shutdown().await;
}

#[tokio::test]
async fn prompts_read_from_a_pipe_share_one_conversation() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        let users = messages_with_role(body, "user").len();
        Turn::Text(format!("answer {users}"))
    })
    .await;
    let run = run_chat(&fake, &ollama_args(&mock, &["--yes"]), "first\n\nsecond\n").await;
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout, "answer 1\nanswer 2\n");
    let bodies = mock.bodies(CHAT);
    assert_eq!(bodies.len(), 2);
    let history: Vec<&str> = bodies[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["first", "answer 1", "second"]);
}

#[tokio::test]
async fn think_is_sent_to_a_thinking_model() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Text("thought".into())).await;
    let url = mock.url.clone();
    let run = run_chat(
        &fake,
        &[
            "--ollama-url",
            &url,
            "--model",
            THINKING_MODEL,
            "--think",
            "hi",
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    assert_eq!(mock.bodies(CHAT)[0]["think"], true);
}

#[tokio::test]
async fn flags_may_follow_the_prompt_and_the_environment_names_ollama_and_the_model() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(cube_script).await;
    let run = run_chat(
        &fake,
        &[
            "add",
            "a",
            "cube",
            "--yes",
            "--ollama-url",
            &mock.url,
            "--model",
            TOOL_MODEL,
        ],
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    assert_eq!(last_message(&mock.bodies(CHAT)[0])["content"], "add a cube");

    // OLLAMA_HOST as Ollama itself takes it: host:port without a scheme.
    let host = mock.url.trim_start_matches("http://").to_owned();
    let run = support::run_chat_env(
        fake.port,
        &["--yes", "add a cube"],
        "",
        &[("OLLAMA_HOST", &host), ("OLLAMA_MODEL", TOOL_MODEL)],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(mock.bodies(CHAT).len(), 4);
    assert_eq!(mock.bodies(CHAT)[2]["model"], TOOL_MODEL);
}

#[tokio::test]
async fn blender_command_needs_approval_like_code() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|body| {
        if last_message(body)["role"] == "user" {
            calls(&[(
                "blender_command",
                json!({"type": "execute_code", "params": {"code": "print('sneaky')"}}),
            )])
        } else {
            Turn::Text(
                last_message(body)["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        }
    })
    .await;
    let args = ["--tools", "blender_command", "run it"];
    let run = run_chat(&fake, &ollama_args(&mock, &args), "").await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("The model wants to send this blender_command to Blender:")
            && run.stderr.contains("print('sneaky')")
            && run.stderr.contains("stdin is not a terminal"),
        "{}",
        run.stderr
    );
    assert_eq!(mock.bodies(CHAT).len(), 1);

    let mut with_yes = vec!["--yes"];
    with_yes.extend_from_slice(&args);
    let run = run_chat(&fake, &ollama_args(&mock, &with_yes), "").await;
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.contains("sneaky"), "{}", run.stdout);
}

#[tokio::test]
async fn the_instructions_name_only_the_offered_tools() {
    let fake = FakeAddon::start().await;
    let mock = MockLlm::start(|_| Turn::Text("ok".into())).await;
    let run = run_chat(
        &fake,
        &ollama_args(&mock, &["--yes", "--tools", "get_scene_info", "hi"]),
        "",
    )
    .await;
    assert_eq!(run.code, Some(0));
    let system = mock.bodies(CHAT)[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(system.contains("call get_scene_info"), "{system}");
    assert!(
        !system.contains("execute_blender_code") && !system.contains("get_object_info"),
        "{system}"
    );
}
