//! Real Blender through the subcommands that start it: `serve --spawn-blender` (stdout
//! stays pure JSON-RPC; a Blender already on the port is left alone), `blender` (starts a
//! headless Blender, stops it on SIGTERM) and `demo` (the README's hello cube).
//!
//! Where `blender` is not installed these tests are skipped: each writes `SKIPPED <test>:
//! <reason>` to stderr, which `.ci/run` counts as skipped; in CI (`CI` set) a missing Blender
//! is a failure.

mod support;

use std::process::Stdio;
use std::time::Duration;

use blender_session_mcp::backend::Target;
use serde_json::{Value, json};
use support::blender::Flavour;
use support::{BIN, RawServer, closed_port};

blender_test! {
    /// `serve --spawn-blender` keeps stdout pure JSON-RPC (Blender's own output goes to
    /// stderr), and leaves an already running Blender on the port alone.
    async fn spawn_blender_keeps_stdout_clean_and_leaves_a_running_blender_alone(flavour: Flavour) {
        async fn session(port: u16, flavour: Flavour) -> (Vec<String>, String) {
            let port = port.to_string();
            let mut args = vec!["serve", "--spawn-blender", "--blender-port", &port];
            let spawn = flavour.spawn_args();
            args.extend(spawn.iter().map(String::as_str));
            let mut server = RawServer::start(&args).await;
            let r = server
                .call_tool(
                    2,
                    "execute_blender_code",
                    json!({"code": "print('hello from blender')"}),
                )
                .await;
            assert_eq!(r["result"]["content"][0]["text"], "hello from blender\n");
            server.close_stdin();
            let (status, logs, lines) = server.finish().await;
            assert!(status.success(), "{logs}");
            (lines, logs)
        }

        // Nothing on the port: the server starts Blender, whose output goes to stderr only.
        let port = closed_port();
        let (stdout_lines, logs) = session(port, flavour).await;
        for line in &stdout_lines {
            let v: Value = serde_json::from_str(line).expect("JSON");
            assert_eq!(v["jsonrpc"], "2.0", "{line}");
        }
        assert!(
            logs.contains("[bsm-server]"),
            "Blender's output went to stderr:\n{logs}"
        );
        assert!(logs.contains("starting headless Blender"), "{logs}");
        let target = Target::new("127.0.0.1", port);
        assert!(
            !blender_session_mcp::headless::port_answers(&target).await,
            "stopped with the server"
        );

        // A Blender already listening is used and left running.
        let port = closed_port();
        let blender = flavour.start(port).await;
        let (_, logs) = session(port, flavour).await;
        assert!(logs.contains("leaving it alone"), "{logs}");
        let target = Target::new("127.0.0.1", port);
        assert!(
            blender_session_mcp::headless::port_answers(&target).await,
            "still running"
        );
        blender.stop(Duration::from_secs(10)).await.expect("stop");
    }
}

blender_test! {
    /// `blender-session-mcp blender` starts a headless Blender, says what it started, and stops
    /// it cleanly on SIGTERM.
    async fn the_blender_subcommand_starts_and_stops_blender(flavour: Flavour) {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let port = closed_port();
        let mut child = tokio::process::Command::new(BIN)
            .args(["blender", "--port", &port.to_string()])
            .args(flavour.spawn_args())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("a line");
        assert!(first.contains(&format!("127.0.0.1:{port}")), "{first}");
        assert!(first.contains("Stop with Ctrl-C"), "{first}");
        let target = Target::new("127.0.0.1", port);
        assert!(blender_session_mcp::headless::port_answers(&target).await);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id().expect("pid") as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signal");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("exits")
            .expect("status");
        assert!(status.success(), "{status:?}");
        assert!(!blender_session_mcp::headless::port_answers(&target).await);
    }
}

blender_test! {
    /// The README's run command: `demo` prints the cube, the state and a history with
    /// durations, and exits 0.
    async fn the_demo_adds_a_cube_and_prints_state_and_history(flavour: Flavour) {
        let port = closed_port();
        let out = tokio::time::timeout(
            Duration::from_secs(180),
            tokio::process::Command::new(BIN)
                .args(["demo", "--blender-port", &port.to_string()])
                .args(flavour.spawn_args())
                .output(),
        )
        .await
        .expect("in time")
        .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for expected in [
            "SessionManager initialized",
            "✓ Session created: scene-",
            "✓ Blender connected for session",
            "Created HelloCube at (0.0, 0.0, 1.0)",
            "HelloCube    MESH",
            "\"active\": \"HelloCube\"",
            "execute_code (execute_blender_code): success (",
            "✓ Session closed: scene-",
        ] {
            assert!(
                stdout.contains(expected),
                "demo output lacks {expected:?}:\n{stdout}"
            );
        }
        let target = Target::new("127.0.0.1", port);
        assert!(
            !blender_session_mcp::headless::port_answers(&target).await,
            "the demo stopped its Blender"
        );
    }
}
