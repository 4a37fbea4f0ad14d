//! The `check` command: connect to the Blender port once, say what answered (addon and
//! protocol, the scene, the round-trip time) or what holds the port instead, and how to fix
//! the connection.
//!
//! `check` never hangs: it speaks the classic protocol over one [`Connection`] directly (not
//! through a session link) so that every wait has a short bound — the connect timeout, then
//! [`FIRST_BYTE`] for the first byte of each reply and [`REST`] for the rest of it — and so
//! that it sees the first bytes of whatever answered: a silent listener, an HTTP server and
//! other non-JSON replies are each named. A port that stays silent is asked once more, in
//! HTTP (within [`HTTP_PROBE`]), since many web servers wait for a whole HTTP request before
//! they say anything. Each step is printed on its own line as it starts.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::SceneInfo;
use crate::backend::Target;
use crate::backend::classic::{
    BoundedError, Connection, ConnectionError, ProtocolError, Reply, ReplyLimits, encode_request,
    in_band_error,
};
use crate::mcp::errors::troubleshooting;
use crate::session::RegistryConfig;

/// Longest wait for the first byte of a reply (shorter when `--command-timeout` is).
pub const FIRST_BYTE: Duration = Duration::from_secs(5);

/// Longest wait for the rest of a reply once its first byte arrived.
pub const REST: Duration = Duration::from_secs(3);

/// Longest wait for the HTTP question asked of a silent port (connect and first bytes).
pub const HTTP_PROBE: Duration = Duration::from_secs(2);

/// Run `check` against the Blender `config` names; returns the process exit code.
pub async fn run(config: &RegistryConfig) -> i32 {
    let target = &config.default_target;
    let limits = ReplyLimits {
        first_byte: FIRST_BYTE.min(config.command_timeout),
        rest: REST,
    };
    step(&format!("Checking Blender at {target} …"));
    step(&format!(
        "… connecting (up to {})",
        seconds(config.connect_timeout)
    ));
    let started = Instant::now();
    let mut conn =
        match Connection::connect(target, config.connect_timeout, config.max_reply_bytes).await {
            Ok(conn) => conn,
            Err(e) => return fail(&e.to_string(), target),
        };
    step(&format!(
        "✓ connected to {target} in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));

    let outcome = probe(&mut conn, target, config, limits).await;
    conn.close().await;
    match outcome {
        Ok(()) => 0,
        Err(Failure::Said(message)) => fail(&message, target),
        Err(Failure::Silent(after)) => {
            // Many web servers wait for a complete HTTP request before saying anything: ask
            // them one, on a fresh connection, to name what holds the port.
            step(&format!(
                "… no reply within {}; asking in HTTP whether a web server holds the port (up to {})",
                seconds(after),
                seconds(HTTP_PROBE)
            ));
            let status = http_status(target).await;
            fail(&silent_port(target, after, status.as_deref()), target)
        }
    }
}

/// What to say about a port that accepted the connection but did not answer within `after`;
/// `http_status` is what it answered to an HTTP request, if it did.
fn silent_port(target: &Target, after: Duration, http_status: Option<&str>) -> String {
    let silent = format!(
        "nothing answered within {}: something accepts connections on {target} but does not speak the BlenderMCP protocol",
        seconds(after)
    );
    match http_status {
        Some(status) => format!(
            "{silent}; asked in HTTP, it answered ({}): this port belongs to a web server, not the BlenderMCP addon",
            clip(status, 80)
        ),
        None => format!(
            "{silent} (or Blender is frozen: a long script, a render or a modal dialog holds its main thread)"
        ),
    }
}

/// Why the probe failed.
enum Failure {
    /// Nothing answered within this long: worth asking in HTTP.
    Silent(Duration),
    /// The line saying what went wrong.
    Said(String),
}

/// The status line of an HTTP reply to `GET /` on `target`, if one comes within
/// [`HTTP_PROBE`]. (Harmless to a frozen addon: it buffers the bytes until the close.)
async fn http_status(target: &Target) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let host = target.host.trim_matches(['[', ']']);
        let mut stream = tokio::net::TcpStream::connect((host, target.port))
            .await
            .ok()?;
        let request = format!("GET / HTTP/1.0\r\nHost: {target}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = Vec::with_capacity(256);
        while head.len() < 256 && !head.contains(&b'\n') {
            let n = (&mut stream)
                .take((256 - head.len()) as u64)
                .read_buf(&mut head)
                .await
                .ok()?;
            if n == 0 {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head);
        let line = text.lines().next()?.trim();
        line.starts_with("HTTP/").then(|| line.to_owned())
    };
    tokio::time::timeout(HTTP_PROBE, ask).await.ok().flatten()
}

/// Ask the addon about itself and its scene.
async fn probe(
    conn: &mut Connection,
    target: &Target,
    config: &RegistryConfig,
    limits: ReplyLimits,
) -> Result<(), Failure> {
    let (reply, _) = match ask(conn, "get_addon_info", config, limits).await {
        Ok(answered) => answered,
        Err(BoundedError::Silent { after }) => return Err(Failure::Silent(after)),
        Err(e) => return Err(Failure::Said(describe("get_addon_info", &e, target))),
    };
    match reply {
        Reply::Success(info) => step(&format!(
            "✓ addon: {} {} (protocol {}), Blender {}",
            shown(&info, "name"),
            shown(&info, "addon_version"),
            info.get("protocol_version")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            shown(&info, "blender_version"),
        )),
        // The classic addon does not know get_addon_info ("Unknown command type").
        Reply::Error(_) => step("✓ addon: classic BlenderMCP (no get_addon_info; protocol 0)"),
    }

    // The addon's own scene summary (the classic command, not this server's scene program).
    let (reply, rtt) = ask(conn, "get_scene_info", config, limits)
        .await
        .map_err(|e| Failure::Said(describe("get_scene_info", &e, target)))?;
    let scene = match reply {
        Reply::Success(scene) => scene,
        Reply::Error(message) => {
            return Err(Failure::Said(format!(
                "get_scene_info: Blender reported an error: {message}"
            )));
        }
    };
    if let Some(message) = in_band_error(&scene) {
        return Err(Failure::Said(format!(
            "get_scene_info: Blender reported an error: {message}"
        )));
    }
    let scene = serde_json::from_value::<SceneInfo>(scene).map_err(|e| {
        Failure::Said(format!(
            "get_scene_info: the answer is not a scene summary: {e}"
        ))
    })?;
    step(&format!(
        "✓ scene {:?}: {} object(s), {} material(s)",
        scene.name, scene.object_count, scene.materials_count
    ));
    step(&format!(
        "✓ round trip (get_scene_info): {:.2} ms",
        rtt.as_secs_f64() * 1e3
    ));
    Ok(())
}

/// One bounded request and its reply, with its duration.
async fn ask(
    conn: &mut Connection,
    command: &str,
    config: &RegistryConfig,
    limits: ReplyLimits,
) -> Result<(Reply, Duration), BoundedError> {
    let request = encode_request(command, None, config.max_request_bytes).map_err(|e| {
        BoundedError::Failed {
            source: ConnectionError::Protocol(e),
            head: Vec::new(),
        }
    })?;
    step(&format!(
        "… {command}: waiting up to {} for a reply",
        seconds(limits.first_byte)
    ));
    let started = Instant::now();
    let reply = conn.round_trip_within(&request, limits).await?;
    Ok((reply, started.elapsed()))
}

/// What a failed exchange says about what holds the port.
fn describe(command: &str, e: &BoundedError, target: &Target) -> String {
    let head = e.head();
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start();
    if trimmed.starts_with("HTTP/") {
        let status = trimmed.lines().next().unwrap_or_default();
        return format!(
            "an HTTP server answered ({}): this port belongs to a web server, not the BlenderMCP addon",
            clip(status, 80)
        );
    }
    match e {
        // Only after an earlier answer (the first silence is `silent_port`'s).
        BoundedError::Silent { after } => format!(
            "{command}: nothing answered within {}, though Blender answered before: a long script, a render or a modal dialog may hold its main thread",
            seconds(*after)
        ),
        _ if !head.is_empty() && !trimmed.starts_with(['{', '[']) && !trimmed.is_empty() => {
            format!(
                "something answered {:?}, which is not JSON: this port belongs to another program, not the BlenderMCP addon",
                clip(trimmed.trim_end(), 60)
            )
        }
        BoundedError::Unfinished {
            after, received, ..
        } => format!(
            "{command}: a reply started ({received} byte(s), {:?}) but did not complete within {} more: this does not look like the BlenderMCP addon",
            clip(trimmed, 60),
            seconds(*after)
        ),
        BoundedError::Failed {
            source: ConnectionError::Protocol(p @ ProtocolError::Malformed { .. }),
            ..
        } => format!(
            "{command}: the answer is JSON but not a BlenderMCP reply ({p}): this port belongs to another program"
        ),
        BoundedError::Failed {
            source: ConnectionError::Closed { received: 0 },
            ..
        } => format!(
            "{command}: the connection was closed without a reply: something accepts connections on {target} but does not speak the BlenderMCP protocol"
        ),
        BoundedError::Failed { source, .. } => format!("{command} failed: {source}"),
    }
}

/// Report a failure with the troubleshooting steps; returns the exit code.
fn fail(message: &str, target: &Target) -> i32 {
    eprintln!("✗ {message}\n\n{}", troubleshooting(target));
    1
}

/// Print one progress line now, not when the buffer fills.
fn step(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the check: its exit code still tells the result.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A duration the way a person reads it: `5 s`, `500 ms`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// At most `max` characters of `s`, with `…` when cut.
fn clip(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// A field of a JSON object for display: strings without quotes, `?` when absent.
fn shown(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::new("127.0.0.1", 9876)
    }

    fn failed(source: ConnectionError, head: &[u8]) -> BoundedError {
        BoundedError::Failed {
            source,
            head: head.to_vec(),
        }
    }

    #[test]
    fn names_what_holds_the_port() {
        let silent = silent_port(&target(), FIRST_BYTE, None);
        assert!(
            silent.starts_with("nothing answered within 5 s: something accepts connections on 127.0.0.1:9876 but does not speak the BlenderMCP protocol"),
            "{silent}"
        );
        assert!(silent.contains("Blender is frozen"), "{silent}");
        let web = silent_port(&target(), FIRST_BYTE, Some("HTTP/1.0 200 OK"));
        assert!(
            web.ends_with("; asked in HTTP, it answered (HTTP/1.0 200 OK): this port belongs to a web server, not the BlenderMCP addon"),
            "{web}"
        );
        let later = describe(
            "get_scene_info",
            &BoundedError::Silent { after: FIRST_BYTE },
            &target(),
        );
        assert!(later.contains("Blender answered before"), "{later}");

        let http = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        let malformed = || ProtocolError::Malformed {
            detail: "expected a JSON object".into(),
        };
        let text = describe(
            "get_addon_info",
            &failed(ConnectionError::Protocol(malformed()), http),
            &target(),
        );
        assert_eq!(
            text,
            "an HTTP server answered (HTTP/1.1 400 Bad Request): this port belongs to a web server, not the BlenderMCP addon"
        );

        let ssh = describe(
            "get_addon_info",
            &failed(
                ConnectionError::Protocol(malformed()),
                b"SSH-2.0-OpenSSH_9.6\r\n",
            ),
            &target(),
        );
        assert!(
            ssh.starts_with("something answered \"SSH-2.0-OpenSSH_9.6\", which is not JSON"),
            "{ssh}"
        );

        let json = describe(
            "get_addon_info",
            &failed(
                ConnectionError::Protocol(malformed()),
                br#"{"jsonrpc":"2.0"}"#,
            ),
            &target(),
        );
        assert!(json.contains("JSON but not a BlenderMCP reply"), "{json}");

        let closed = describe(
            "get_addon_info",
            &failed(ConnectionError::Closed { received: 0 }, b""),
            &target(),
        );
        assert!(closed.contains("closed without a reply"), "{closed}");

        let partial = describe(
            "get_scene_info",
            &BoundedError::Unfinished {
                after: REST,
                received: 9,
                head: br#"{"status""#.to_vec(),
            },
            &target(),
        );
        assert!(partial.contains("did not complete within 3 s"), "{partial}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds(Duration::from_secs(5)), "5 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1500 ms");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
