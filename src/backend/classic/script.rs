//! Python programs this server sends through the addon's `execute_code` command, and the
//! parsing of what they print back.
//!
//! The user's code is wrapped (`python/exec_wrapper.py`) so that one round trip returns the
//! user's stdout unchanged, the traceback *and* the stdout printed before an exception (the
//! plain addon loses both), and a snapshot of the scene state. The wrapper's own output sits
//! between two markers carrying a random nonce, so nothing the user prints can forge it, and
//! is stripped before the user sees the output.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::backend::{SceneInfo, Snapshot};

const EXEC_WRAPPER: &str = include_str!("python/exec_wrapper.py");
const SCENE_INFO: &str = include_str!("python/scene_info.py");

/// The markers around one program's machine-readable output.
#[derive(Debug, Clone)]
pub struct Markers {
    start: String,
    end: String,
}

impl Markers {
    /// Fresh markers with a random nonce.
    pub fn new() -> Self {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        Markers {
            start: format!("<<bsm:{nonce}>>"),
            end: format!("<</bsm:{nonce}>>"),
        }
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("__BSM_START__", &self.start)
            .replace("__BSM_END__", &self.end)
    }

    /// Where the program's payload sits in captured stdout: (index of the start marker,
    /// index of the end marker). `None` when the markers are missing (the program did not run
    /// to its end).
    fn find(&self, captured: &str) -> Option<(usize, usize)> {
        let start = captured.rfind(&self.start)?;
        let after_start = start + self.start.len();
        let end = after_start + captured[after_start..].find(&self.end)?;
        Some((start, end))
    }

    /// Split captured stdout into (what the user printed, the program's payload).
    ///
    /// Returns `None` when the markers are missing (the program did not run to its end).
    pub fn split<'a>(&self, captured: &'a str) -> Option<(String, &'a str)> {
        let (start, end) = self.find(captured)?;
        let payload = &captured[start + self.start.len()..end];
        let mut user = String::with_capacity(captured.len() - payload.len());
        user.push_str(&captured[..start]);
        user.push_str(&captured[end + self.end.len()..]);
        Some((user, payload))
    }
}

impl Default for Markers {
    fn default() -> Self {
        Self::new()
    }
}

/// The wrapper program for `code`, and the markers to read its answer with.
pub fn wrap_user_code(code: &str, track_state: bool) -> (String, Markers) {
    let markers = Markers::new();
    let encoded = base64::engine::general_purpose::STANDARD.encode(code.as_bytes());
    let program = markers
        .fill(EXEC_WRAPPER)
        .replace("__BSM_CODE__", &encoded)
        .replace("__BSM_TRACK__", if track_state { "True" } else { "False" });
    (program, markers)
}

/// The scene-info program and its markers.
pub fn scene_info_program() -> (String, Markers) {
    let markers = Markers::new();
    (markers.fill(SCENE_INFO), markers)
}

/// What the wrapper reports after running user code.
#[derive(Debug, Clone, Deserialize)]
pub struct WrapperReport {
    /// The formatted traceback when the user's code raised.
    pub error: Option<String>,
    /// The state snapshot, when tracking is on and it could be taken.
    pub state: Option<Snapshot>,
    /// Why the snapshot failed, if it did.
    pub state_error: Option<String>,
}

/// Outcome of decoding the wrapper's answer.
#[derive(Debug)]
pub struct WrappedOutput {
    /// Everything the user's code printed, byte for byte.
    pub stdout: String,
    /// The wrapper's report.
    pub report: WrapperReport,
}

/// Parse the `execute_code` result (`{"executed": true, "result": "<stdout>"}`) of a wrapped
/// program. Takes the result by value so a large stdout is never copied. Returns a
/// description of the problem when the answer is not the wrapper's.
pub fn parse_wrapped(result: Value, markers: &Markers) -> Result<WrappedOutput, String> {
    let mut captured = match result {
        Value::Object(mut map) => match map.remove("result") {
            Some(Value::String(s)) => s,
            other => {
                return Err(format!(
                    "unexpected execute_code result from Blender: {}",
                    other.unwrap_or(Value::Null)
                ));
            }
        },
        other => {
            return Err(format!(
                "unexpected execute_code result from Blender: {other}"
            ));
        }
    };
    let (start, end) = markers.find(&captured).ok_or_else(|| {
        "the Blender addon returned output without this server's end marker; the code may have replaced sys.stdout or ended the interpreter".to_string()
    })?;
    let report: WrapperReport =
        serde_json::from_str(&captured[start + markers.start.len()..end])
            .map_err(|e| format!("could not read the state report from Blender: {e}"))?;
    // Cut the report out in place: the user's stdout is what remains.
    captured.replace_range(start..end + markers.end.len(), "");
    Ok(WrappedOutput {
        stdout: captured,
        report,
    })
}

/// Parse the answer of [`scene_info_program`]: (stray stdout, the scene).
pub fn parse_scene_info(result: &Value, markers: &Markers) -> Result<(String, SceneInfo), String> {
    let captured = captured_stdout(result)?;
    let (stray, payload) = markers
        .split(captured)
        .ok_or_else(|| "the scene report from Blender is missing its end marker".to_string())?;
    let info = serde_json::from_str(payload)
        .map_err(|e| format!("could not read the scene report from Blender: {e}"))?;
    Ok((stray, info))
}

/// The stdout the addon captured for an `execute_code` request.
pub fn captured_stdout(result: &Value) -> Result<&str, String> {
    result
        .get("result")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("unexpected execute_code result from Blender: {result}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_strips_only_the_payload() {
        let m = Markers::new();
        let captured = format!("hello\n{}{{\"a\":1}}{}tail", m.start, m.end);
        let (user, payload) = m.split(&captured).expect("markers");
        assert_eq!(user, "hello\ntail");
        assert_eq!(payload, "{\"a\":1}");
    }

    #[test]
    fn forged_markers_with_another_nonce_are_user_output() {
        let m = Markers::new();
        let other = Markers::new();
        let captured = format!("{}x{}", other.start, other.end);
        assert!(m.split(&captured).is_none());
    }

    #[test]
    fn wrapper_embeds_code_as_base64() {
        let (program, _) = wrap_user_code("print('立方体')", true);
        assert!(program.is_ascii());
        assert!(!program.contains("__BSM_"));
        assert!(program.contains("if True:"));
        let err = parse_wrapped(json!({"executed": true}), &Markers::new()).expect_err("no result");
        assert!(err.contains("unexpected"));
    }
}
