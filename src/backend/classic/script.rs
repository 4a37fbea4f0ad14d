//! Python programs this server sends through the addon's `execute_code` command, and the
//! parsing of what they print back.
//!
//! The Blender-side code lives in one versioned module (`python/bsm_helper.py`), installed
//! into the Blender process once as `sys.modules["_bsm_helper_<version>"]`, its entry point
//! bound to the same name in `builtins`, and then called with a one-line request
//! ([`Request::call`]: that name applied to one string holding the user's code as base64,
//! the session's journal cursor and a nonce). The name is looked up *before* anything else
//! runs; when it is missing (Blender restarted, the helper deleted, only another version
//! there) the line fails with a `NameError` for that name and nothing ran, so the server may
//! send the request again with the helper's source in front ([`Request::install_and_call`])
//! without breaking the never-re-send rule. A link's first request carries the source anyway
//! (it installs only when missing), so a fresh connection costs one round trip, not two.
//!
//! One round trip returns the user's stdout unchanged, the traceback *and* the stdout printed
//! before an exception (the plain addon loses both), and the scene state since the session's
//! cursor. The helper's own output sits between two markers carrying a random nonce, so
//! nothing the user prints can forge it, and is stripped before the user sees the output.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::backend::{
    Cursor, ObjectChange, ObjectsUpdate, SceneInfo, SceneQuery, Selection, StateUpdate,
};

const HELPER: &str = include_str!("python/bsm_helper.py");
/// The markers around one program's machine-readable output.
#[derive(Debug, Clone)]
pub struct Markers {
    nonce: String,
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
            nonce,
        }
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

/// The helper module's name in `sys.modules`: `_bsm_helper_` and a hash of its source, so
/// every build whose helper differs installs its own.
pub fn helper_module() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        // FNV-1a: stable across runs and platforms (std's hasher is not).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in HELPER.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("_bsm_helper_{h:016x}")
    })
}

/// The helper's source, as the install program carries it (base64, computed once).
fn helper_source_b64() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| base64::engine::general_purpose::STANDARD.encode(HELPER.as_bytes()))
}

/// One call of the helper, ready to be sent as an `execute_code` program.
#[derive(Debug)]
pub struct Request {
    /// The entry point's one argument: `OP NONCE TRACK EPOCH SEQ DATA` (`bsm_helper.py`).
    spec: String,
    /// The markers its answer comes between.
    pub markers: Markers,
}

impl Request {
    fn new(op: char, track: bool, cursor: Option<&Cursor>, data: &[u8]) -> Self {
        let markers = Markers::new();
        let (epoch, seq) = cursor_args(cursor);
        let epoch = if epoch.is_empty() { "-" } else { epoch };
        // Base64 (A-Z a-z 0-9 + / =), hex nonce and epoch, digits: nothing in the spec
        // needs escaping inside a Python string literal, and no field holds a space.
        let spec = format!(
            "{op} {} {} {epoch} {seq} {}",
            markers.nonce,
            u8::from(track),
            base64::engine::general_purpose::STANDARD.encode(data)
        );
        Request { spec, markers }
    }

    /// Run `code`, then report the state since `cursor` when `track` is set.
    pub fn run(code: &str, track: bool, cursor: Option<&Cursor>) -> Self {
        Self::new('r', track, cursor, code.as_bytes())
    }

    /// `get_scene_info`: the summary and one page for `query`, and the state since `cursor`
    /// when `track` is set.
    pub fn scene(query: &SceneQuery, track: bool, cursor: Option<&Cursor>) -> Self {
        let json = crate::backend::classic::protocol::encode_ascii(query);
        Self::new('s', track, cursor, &json)
    }

    /// The short program: the helper's entry point (a builtin) applied to the spec. One
    /// name and one string literal: Blender compiles it in 19 µs, where the former
    /// `import sys` / `sys.modules.get` / conditional call took 56 µs (Blender 3.4.1's
    /// Python 3.10, `time.perf_counter()` over 3 000 compiles there). Without the helper
    /// it fails with a `NameError` before anything of it runs ([`helper_missing`]).
    pub fn call(&self) -> String {
        format!("{}(\"{}\")\n", helper_module(), self.spec)
    }

    /// The program that installs the helper when it is missing, binds its entry point in
    /// `builtins`, then makes the call.
    pub fn install_and_call(&self) -> String {
        format!(
            "import sys,types,base64,builtins\nn=\"{name}\"\nm=sys.modules.get(n)\nif m is None:\n m=types.ModuleType(n)\n exec(compile(base64.b64decode(\"{src}\").decode(\"utf-8\"),n,\"exec\"),m.__dict__)\n m.install()\n sys.modules[n]=m\nsetattr(builtins,n,m.call)\n{call}",
            name = helper_module(),
            src = helper_source_b64(),
            call = self.call()
        )
    }
}

/// A cursor as the helper's arguments; an epoch that is not plain hex is no cursor.
fn cursor_args(cursor: Option<&Cursor>) -> (&str, u64) {
    match cursor {
        Some(c) if c.epoch.bytes().all(|b| b.is_ascii_alphanumeric()) => (&c.epoch, c.seq),
        _ => ("", 0),
    }
}

/// Whether Blender's error for a [`Request::call`] says the helper is not installed: the
/// line's one name is undefined, so nothing of the request ran. (The helper reports every
/// exception of the user's code in its own answer, so only the lookup can raise this.)
pub fn helper_missing(message: &str) -> bool {
    message.contains(&format!("name '{}' is not defined", helper_module()))
}

/// The state part of the helper's answer: the journal position it brings the session to,
/// and the changes since the session's cursor (`ops`) or the whole object list (`full`).
#[derive(Debug, Clone, Deserialize)]
pub struct HelperState {
    epoch: String,
    seq: u64,
    count: usize,
    #[serde(default)]
    scene: Option<String>,
    #[serde(default)]
    ops: Option<Vec<Vec<String>>>,
    #[serde(default)]
    full: Option<Vec<String>>,
    #[serde(default)]
    active: Option<String>,
    /// Present (with `active`) when the selection changed since the cursor.
    #[serde(default)]
    selected: Option<Vec<String>>,
}

impl HelperState {
    /// The state update a session applies.
    pub fn into_update(self) -> Result<StateUpdate, String> {
        let objects = match (self.full, self.ops) {
            (Some(all), _) => ObjectsUpdate::Full(all),
            (None, ops) => ObjectsUpdate::Changes(
                ops.unwrap_or_default()
                    .into_iter()
                    .map(change)
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(StateUpdate {
            cursor: Some(Cursor {
                epoch: self.epoch,
                seq: self.seq,
            }),
            scene: self.scene,
            object_count: Some(self.count),
            objects,
            selection: self.selected.map(|selected| Selection {
                active: self.active,
                selected,
            }),
        })
    }
}

/// One journal entry: `["+", name]`, `["-", name]` or `["~", old, new]`.
fn change(op: Vec<String>) -> Result<ObjectChange, String> {
    let mut it = op.into_iter();
    match (it.next().as_deref(), it.next(), it.next()) {
        (Some("+"), Some(name), None) => Ok(ObjectChange::Added(name)),
        (Some("-"), Some(name), None) => Ok(ObjectChange::Removed(name)),
        (Some("~"), Some(from), Some(to)) => Ok(ObjectChange::Renamed { from, to }),
        _ => Err("the state report from Blender has a malformed journal entry".into()),
    }
}

/// What the helper reports after running user code.
#[derive(Debug, Clone, Deserialize)]
pub struct WrapperReport {
    /// The formatted traceback when the user's code raised.
    pub error: Option<String>,
    /// The state since the cursor, when tracking is on and it could be read.
    #[serde(default)]
    pub state: Option<HelperState>,
    /// Why the state could not be read, if it could not.
    #[serde(default)]
    pub state_error: Option<String>,
}

/// What the helper's `scene` call answers: `{"scene": …, "state": …}`, or `{"error": …}`.
/// (Not a flattened struct: serde buffers a flattened map whole before reading it, which
/// was a sixth of the server's time per call.)
#[derive(Debug, Clone, Deserialize)]
pub struct SceneReport {
    /// The summary and the page.
    #[serde(default, rename = "scene")]
    pub info: SceneInfo,
    /// Why the query could not be answered (e.g. an unknown collection).
    #[serde(default)]
    pub error: Option<String>,
    /// The state since the cursor, when tracking is on.
    #[serde(default)]
    pub state: Option<HelperState>,
}

/// Outcome of decoding the helper's answer to a run.
#[derive(Debug)]
pub struct WrappedOutput {
    /// Everything the user's code printed, byte for byte.
    pub stdout: String,
    /// The helper's report.
    pub report: WrapperReport,
}

/// Parse the `execute_code` result (`{"executed": true, "result": "<stdout>"}`) of a helper
/// run. Takes the result by value so a large stdout is never copied. Returns a
/// description of the problem when the answer is not the helper's.
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

/// Parse the answer of a [`Request::scene`].
pub fn parse_scene(result: &Value, markers: &Markers) -> Result<SceneReport, String> {
    let captured = captured_stdout(result)?;
    let (_stray, payload) = markers
        .split(captured)
        .ok_or_else(|| "the scene report from Blender is missing its end marker".to_string())?;
    serde_json::from_str(payload)
        .map_err(|e| format!("could not read the scene report from Blender: {e}"))
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
    fn the_one_liner_is_short_ascii_and_carries_the_code_as_base64() {
        let cursor = Cursor {
            epoch: "abc123".into(),
            seq: 42,
        };
        let req = Request::run("print('立方体')", true, Some(&cursor));
        let line = req.call();
        assert!(line.is_ascii());
        assert!(line.len() < 200, "{} bytes: {line}", line.len());
        assert!(line.starts_with(&format!("{}(\"r ", helper_module())));
        assert!(line.contains(" 1 abc123 42 "), "{line}");
        let install = req.install_and_call();
        assert!(install.ends_with(&line));
        assert!(install.contains("setattr(builtins,n,m.call)"));
        let untracked = Request::run("", false, None).call();
        assert!(untracked.contains(" 0 - 0 \")"), "{untracked}");
        let missing = format!(
            "Code execution error: name '{}' is not defined",
            helper_module()
        );
        assert!(helper_missing(&missing));
        assert!(!helper_missing(
            "Code execution error: name 'x' is not defined"
        ));
        let err = parse_wrapped(json!({"executed": true}), &Markers::new()).expect_err("no result");
        assert!(err.contains("unexpected"));
    }

    #[test]
    fn an_epoch_that_is_not_alphanumeric_is_no_cursor() {
        let bad = Cursor {
            epoch: "x\",1);evil(\"".into(),
            seq: 1,
        };
        assert_eq!(cursor_args(Some(&bad)), ("", 0));
    }

    #[test]
    fn journal_entries_become_changes() {
        let state: HelperState = serde_json::from_value(json!({
            "epoch": "e", "seq": 3, "count": 2, "ops": [["+", "A"], ["~", "A", "B"], ["-", "C"]]
        }))
        .expect("parses");
        let update = state.into_update().expect("valid");
        assert_eq!(
            update.objects,
            ObjectsUpdate::Changes(vec![
                ObjectChange::Added("A".into()),
                ObjectChange::Renamed {
                    from: "A".into(),
                    to: "B".into()
                },
                ObjectChange::Removed("C".into()),
            ])
        );
        assert!(update.selection.is_none());
        let bad: HelperState =
            serde_json::from_value(json!({"epoch": "e", "seq": 1, "count": 0, "ops": [["?"]]}))
                .expect("parses");
        assert!(bad.into_update().is_err());
    }
}
