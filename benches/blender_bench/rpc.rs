//! A plain JSON-RPC-over-stdio MCP client, the same for every server the side-by-side run
//! compares (ours and a peer): one request line written, lines read until the answer with
//! its id (notifications skipped). No SDK, so neither server is favoured by its client.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long any answer may take before the bench gives up on that server.
const ANSWER_WAIT: Duration = Duration::from_secs(300);

/// A server process driven over its stdio.
pub(crate) struct RpcServer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    line: String,
    next_id: u64,
}

/// One answered tool call: how long it took (request written → answer line read) and the
/// size of the text the model reads.
pub(crate) struct Answer {
    pub(crate) took: Duration,
    pub(crate) text_bytes: usize,
}

impl RpcServer {
    /// Start `command` and initialize it; returns the server and the time from spawn to the
    /// `initialize` answer (the cold start).
    pub(crate) async fn start(mut command: Command) -> Result<(RpcServer, Duration), String> {
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command.as_std().get_program()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("no stdio pipes".into());
        };
        let mut server = RpcServer {
            child,
            stdin,
            stdout: BufReader::with_capacity(1 << 20, stdout),
            line: String::new(),
            next_id: 1,
        };
        server
            .request(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "blender-bench", "version": "1"}}),
            )
            .await?;
        let ready = started.elapsed();
        server
            .send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok((server, ready))
    }

    async fn send(&mut self, message: &Value) -> Result<(), String> {
        let mut line = serde_json::to_vec(message).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .map_err(|e| format!("server stdin: {e}"))
    }

    /// Send a request and read lines until its answer; returns the answer line's length
    /// (the line stays in `self.line`).
    async fn request(&mut self, method: &str, params: Value) -> Result<usize, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        // rmcp writes compact JSON: `{"jsonrpc":"2.0","id":7,"result":...}`.
        let needle = format!("\"id\":{id},");
        loop {
            self.line.clear();
            let n = tokio::time::timeout(ANSWER_WAIT, self.stdout.read_line(&mut self.line))
                .await
                .map_err(|_| format!("no answer to {method} within {ANSWER_WAIT:?}"))?
                .map_err(|e| format!("server stdout: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "the server closed stdout before answering {method}"
                ));
            }
            // Notifications carry no id. Only the line's head is searched, so a 10 MB answer
            // costs the client no scan.
            let head = &self.line.as_bytes()[..self.line.len().min(64)];
            if memchr::memmem::find(head, needle.as_bytes()).is_some() {
                return Ok(n);
            }
        }
    }

    /// Call a tool; an `isError` result or a JSON-RPC error is an error. Only the round trip
    /// is timed: the answer is parsed after.
    pub(crate) async fn call_tool(&mut self, tool: &str, args: Value) -> Result<Answer, String> {
        let t0 = Instant::now();
        self.request("tools/call", json!({"name": tool, "arguments": args}))
            .await?;
        let took = t0.elapsed();
        let answer: Value = serde_json::from_str(&self.line).map_err(|e| e.to_string())?;
        let result = &answer["result"];
        if result.is_null() || result["isError"] == true {
            let shown: String = self.line.chars().take(300).collect();
            return Err(format!("{tool} failed: {shown}"));
        }
        let text_bytes = result["content"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|b| b["text"].as_str())
                    .map(str::len)
                    .sum()
            })
            .unwrap_or(0);
        Ok(Answer { took, text_bytes })
    }

    /// End the server: close stdin (an MCP server's signal to stop), then kill it if it has
    /// not exited within a few seconds.
    pub(crate) async fn stop(self) {
        let RpcServer {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}
