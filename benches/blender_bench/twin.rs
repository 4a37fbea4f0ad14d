//! The zero-delay fake addon: a Rust twin of the BlenderMCP addon (same framing and replies)
//! that answers instantly, run as a separate process (the bench binary with `--twin`) so its
//! memory and file descriptors are not counted as ours. The twin does not run Python: it
//! recognises the helper calls this server sends and answers with the markers and a canned
//! report, and a user program `#bench-stdout N` prints N bytes. With `--delay-ms D` it
//! serializes every command on a "main thread" that takes D ms.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use blender_session_mcp::backend::Target;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn scene_info() -> Value {
    json!({"name": "Scene", "object_count": 3, "materials_count": 1, "objects": [
        {"name": "Cube", "type": "MESH", "location": [0.0, 0.0, 0.0]},
        {"name": "Camera", "type": "CAMERA", "location": [7.36, -6.93, 4.96]},
        {"name": "Light", "type": "LIGHT", "location": [4.08, 1.01, 5.9]}]})
}

/// Text between `open` and `close` after the first `open`.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// The user stdout `#bench-stdout N` asks for, cached: a zero-delay fake should cost as
/// little as possible, so the figures measure this server, not the fake.
fn bench_stdout(n: usize) -> Arc<String> {
    static CACHE: std::sync::Mutex<Option<(usize, Arc<String>)>> = std::sync::Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((size, out)) = cache.as_ref()
        && *size == n
    {
        return out.clone();
    }
    let mut out = "x".repeat(n.saturating_sub(1));
    if n > 0 {
        out.push('\n');
    }
    let out = Arc::new(out);
    *cache = Some((n, out.clone()));
    out
}

/// The reply to an `execute_code` request, already serialized. The twin does not run
/// Python: it recognises this server's helper calls (`_bsm_helper_…("r NONCE … CODE_B64")`
/// and `_bsm_helper_…("s NONCE …")`, with or without the install program before them) and answers
/// with the markers around a canned report, as if the helper were installed.
fn twin_execute_reply(code: &str) -> Vec<u8> {
    let state = json!({"epoch": "twin", "seq": 0, "count": 3, "scene": "Scene",
                       "full": ["Cube", "Camera", "Light"],
                       "active": "Cube", "selected": ["Cube"]});
    // "OP NONCE TRACK EPOCH SEQ DATA": the nonce and the data are what the twin needs.
    let field = |spec: &str, i: usize| spec.split(' ').nth(i).unwrap_or("").to_owned();
    let (stdout, tail) = if let Some(spec) = between(code, "(\"r ", "\")") {
        let nonce = field(spec, 0);
        let user = base64::engine::general_purpose::STANDARD
            .decode(field(spec, 4))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let n: usize = user
            .strip_prefix("#bench-stdout ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let report = json!({"error": null, "state": state});
        (
            bench_stdout(n),
            format!("<<bsm:{nonce}>>{report}<</bsm:{nonce}>>"),
        )
    } else if let Some(nonce) = between(code, "(\"s ", " ") {
        let mut info = scene_info();
        info["objects_by_type"] = json!({"MESH": 1, "CAMERA": 1, "LIGHT": 1});
        info["collection_count"] = json!(1);
        info["collections"] = json!([{"name": "Collection", "objects": 3}]);
        info["selection"] = json!({"active": "Cube", "selected": ["Cube"]});
        info["selected_count"] = json!(1);
        info["matched"] = json!(3);
        info["offset"] = json!(0);
        info["truncated_by_size"] = json!(false);
        info["next_offset"] = Value::Null;
        let report = json!({"scene": info, "state": state});
        (
            Arc::new(String::new()),
            format!("<<bsm:{nonce}>>{report}<</bsm:{nonce}>>"),
        )
    } else {
        (Arc::new(String::new()), String::new())
    };
    // {"status": "success", "result": {"executed": true, "result": "<stdout><tail>"}}: the
    // stdout is 'x's and newlines, so escaping it is writing each newline as \n.
    let tail = serde_json::to_string(&tail).unwrap_or_default();
    let mut out = Vec::with_capacity(stdout.len() + tail.len() + 64);
    out.extend_from_slice(br#"{"status": "success", "result": {"executed": true, "result": ""#);
    for line in stdout.split_inclusive('\n') {
        out.extend_from_slice(line.trim_end_matches('\n').as_bytes());
        if line.ends_with('\n') {
            out.extend_from_slice(b"\\n");
        }
    }
    out.extend_from_slice(&tail.as_bytes()[1..]);
    out.extend_from_slice(b"}}");
    out
}

fn twin_reply(request: &Value) -> Vec<u8> {
    let reply = match request["type"].as_str() {
        Some("get_scene_info") => json!({"status": "success", "result": scene_info()}),
        Some("ping") => json!({"status": "success", "result": {"pong": true}}),
        Some("execute_code") => {
            return twin_execute_reply(request["params"]["code"].as_str().unwrap_or(""));
        }
        other => {
            json!({"status": "error", "message": format!("Unknown command type: {}", other.unwrap_or("None"))})
        }
    };
    serde_json::to_vec(&reply).unwrap_or_default()
}

/// The twin's "main thread": one OS thread runs every command, each taking `delay` (a real
/// sleep, accurate to well under a millisecond, unlike a tokio timer).
type MainThread = std::sync::mpsc::Sender<(Value, tokio::sync::oneshot::Sender<Vec<u8>>)>;

fn spawn_main_thread(delay: Duration) -> MainThread {
    let (tx, rx) = std::sync::mpsc::channel::<(Value, tokio::sync::oneshot::Sender<Vec<u8>>)>();
    std::thread::spawn(move || {
        for (request, reply) in rx {
            std::thread::sleep(delay);
            let _ = reply.send(twin_reply(&request));
        }
    });
    tx
}

async fn twin_connection(mut sock: tokio::net::TcpStream, main: Option<MainThread>) {
    let _ = sock.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let request: Value = match serde_json::from_slice(&buf) {
            Ok(v) => v,
            Err(e) if e.is_eof() => continue,
            Err(_) => return, // malformed: the addon goes silent and drops the client
        };
        buf.clear();
        let reply = match &main {
            None => twin_reply(&request),
            Some(main) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if main.send((request, tx)).is_err() {
                    return;
                }
                match rx.await {
                    Ok(reply) => reply,
                    Err(_) => return,
                }
            }
        };
        if sock.write_all(&reply).await.is_err() {
            return;
        }
    }
}

pub(crate) fn run_twin(delay_ms: u64) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr").port());
        let _ = std::io::stdout().flush();
        let main = (delay_ms > 0).then(|| spawn_main_thread(Duration::from_millis(delay_ms)));
        // Exit when the bench (our parent, holding our stdin) goes away.
        tokio::spawn(async {
            let mut sink = Vec::new();
            let _ = tokio::io::stdin().read_to_end(&mut sink).await;
            std::process::exit(0);
        });
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(twin_connection(sock, main.clone()));
        }
    });
}

/// A running twin process.
pub(crate) struct Twin {
    _child: std::process::Child,
    pub(crate) port: u16,
}

impl Twin {
    pub(crate) fn start(delay_ms: u64) -> Twin {
        let exe = std::env::current_exe().expect("bench executable");
        let mut child = std::process::Command::new(exe)
            .args(["--twin", "--delay-ms", &delay_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the twin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("twin port");
        Twin {
            _child: child,
            port: line.trim().parse().expect("port number"),
        }
    }

    pub(crate) fn target(&self) -> Target {
        Target::new("127.0.0.1", self.port)
    }
}
