//! One session's link to a classic addon: each typed operation turned into the addon's
//! commands on one keep-alive [`Connection`], and the addon's answers into typed results.
//!
//! An operation may take more than one round trip (a screenshot first asks the addon's
//! protocol level once per connection; a raw command that may change the scene is followed by
//! a state read; a helper call that finds the helper missing is followed by the install
//! program, once), always one after the other on the same connection, inside the one call the
//! command path times and cancels.

use base64::Engine;
use serde_json::{Value, json};

use super::connection::{Connection, ConnectionError};
use super::protocol::{ProtocolError, Reply, encode_request, in_band_error};
use super::{ClassicConfig, is_read_only, script};
use crate::backend::{
    AddonInfo, Answer, BackendError, BoxFuture, CodeOutput, Cursor, IdleState, Link, Operation,
    Output, SceneQuery, Screenshot, StateUpdate, Target,
};
use crate::preview::{recordable, recordable_str};

/// A link to a classic addon.
#[derive(Debug)]
pub(super) struct ClassicLink {
    conn: Connection,
    /// Whether Blender runs on this machine (it can then hand over files it writes).
    local: bool,
    config: std::sync::Arc<ClassicConfig>,
    /// What the addon said about itself, asked at most once per connection.
    addon: Option<AddonInfo>,
    /// Why the connection can no longer be used, once a round trip failed.
    broken: Option<Box<str>>,
    /// Whether the helper module answered on this connection (its next calls are
    /// one-liners; before, the install program goes first).
    helper_ready: bool,
}

/// What one exchange produced: `Err` = the link broke; `Ok(Err)` = Blender reported an error
/// (or nothing was sent), the link is fine.
type Exchanged = Result<Result<Value, BackendError>, BackendError>;

impl ClassicLink {
    pub(super) fn new(
        conn: Connection,
        target: &Target,
        config: std::sync::Arc<ClassicConfig>,
    ) -> Self {
        ClassicLink {
            conn,
            local: target.is_local(),
            config,
            addon: None,
            broken: None,
            helper_ready: false,
        }
    }

    /// One request and its reply. The status error layer becomes `Ok(Err(Blender))`.
    async fn exchange(&mut self, command: &str, params: Option<&Value>) -> Exchanged {
        let request = match encode_request(command, params, self.config.max_request_bytes) {
            Ok(request) => request,
            Err(ProtocolError::RequestTooLarge { size, limit }) => {
                return Ok(Err(BackendError::RequestTooLarge { size, limit }));
            }
            Err(e) => return Ok(Err(BackendError::Unexpected(e.to_string()))),
        };
        match self.conn.round_trip(&request).await {
            Ok(Reply::Success(result)) => Ok(Ok(result)),
            Ok(Reply::Error(message)) => Ok(Err(BackendError::Blender { message })),
            Err(e) => {
                self.broken = Some(e.to_string().into());
                Err(link_error(command, e))
            }
        }
    }

    /// One of this server's Python programs through `execute_code`: its result, or what
    /// Blender reported as an error, at either layer (the reply's status, or in band).
    async fn run_program(
        &mut self,
        program: String,
    ) -> Result<Result<Value, Answer>, BackendError> {
        Ok(match self.exchange_program(program).await? {
            Ok(result) => match in_band(&result) {
                Some(answer) => Err(answer),
                None => Ok(result),
            },
            Err(e) => Err(Answer::failed(e)),
        })
    }

    async fn exchange_program(
        &mut self,
        program: String,
    ) -> Result<Result<Value, BackendError>, BackendError> {
        self.exchange("execute_code", Some(&json!({ "code": program })))
            .await
    }

    /// One call of the helper module: the one-liner when this connection knows the helper
    /// is installed, else the install program with the call (installing only when missing).
    /// When the one-liner finds the helper missing, nothing of it ran: the install program
    /// is sent then, once. `Ok(Err)`: Blender reported an error (either layer).
    async fn helper_call(
        &mut self,
        req: &script::Request,
    ) -> Result<Result<Value, Answer>, BackendError> {
        if self.helper_ready {
            match self.exchange_program(req.call()).await? {
                Err(BackendError::Blender { message }) if script::helper_missing(&message) => {
                    // Blender restarted behind this connection's back, or the helper was
                    // removed: the request provably did not run, so sending it with the
                    // helper is no re-send.
                    tracing::info!("the helper module is missing in Blender: installing it");
                    self.helper_ready = false;
                }
                Err(e) => return Ok(Err(Answer::failed(e))),
                Ok(result) => {
                    return Ok(match in_band(&result) {
                        Some(answer) => Err(answer),
                        None => Ok(result),
                    });
                }
            }
        }
        let result = self.run_program(req.install_and_call()).await?;
        if result.is_ok() {
            self.helper_ready = true;
        }
        Ok(result)
    }

    async fn execute_code(
        &mut self,
        code: &str,
        cursor: Option<&Cursor>,
    ) -> Result<Answer, BackendError> {
        let req = script::Request::run(code, self.config.track_state, cursor);
        let result = match self.helper_call(&req).await? {
            Ok(result) => result,
            Err(answer) => return Ok(answer),
        };
        let out = match script::parse_wrapped(result, &req.markers) {
            Ok(out) => out,
            Err(problem) => return Ok(Answer::failed(BackendError::Unexpected(problem))),
        };
        if let Some(e) = &out.report.state_error {
            tracing::warn!("state report failed: {e}");
        }
        let state = state_update(out.report.state);
        Ok(match out.report.error {
            Some(traceback) => Answer {
                recorded: json!({"stdout": recordable_str(&out.stdout), "traceback": traceback}),
                output: Err(BackendError::CodeFailed {
                    traceback,
                    stdout: out.stdout,
                }),
                state,
                read_state: false,
            },
            None => Answer {
                recorded: json!({ "stdout": recordable_str(&out.stdout) }),
                output: Ok(Output::Code(CodeOutput { stdout: out.stdout })),
                state,
                read_state: false,
            },
        })
    }

    async fn scene_info(
        &mut self,
        query: &SceneQuery,
        cursor: Option<&Cursor>,
    ) -> Result<Answer, BackendError> {
        let req = script::Request::scene(query, self.config.track_state, cursor);
        let result = match self.helper_call(&req).await? {
            Ok(result) => result,
            Err(answer) => return Ok(answer),
        };
        Ok(match script::parse_scene(&result, &req.markers) {
            Ok(report) => match report.error {
                Some(message) => Answer::failed(BackendError::Blender { message }),
                None => Answer {
                    recorded: report.info.history_summary(),
                    state: state_update(report.state),
                    output: Ok(Output::Scene(report.info)),
                    read_state: false,
                },
            },
            Err(problem) => Answer::failed(BackendError::Unexpected(problem)),
        })
    }

    /// Any addon command; one that may change the scene asks for a state read after it when
    /// state tracking is on.
    async fn raw(
        &mut self,
        command: &str,
        params: Option<&Value>,
        wrap: fn(Value) -> Output,
    ) -> Result<Answer, BackendError> {
        let result = match self.exchange(command, params).await? {
            Ok(result) => result,
            Err(e) => return Ok(Answer::failed(e)),
        };
        if let Some(answer) = in_band(&result) {
            return Ok(answer);
        }
        Ok(Answer {
            recorded: recordable(&result),
            output: Ok(wrap(result)),
            state: None,
            read_state: self.config.track_state && !is_read_only(command),
        })
    }

    /// The state since `cursor` through the helper with no user code (after a raw command
    /// that may have changed the scene). `Ok(None)` when Blender answered without a usable
    /// report.
    async fn state_now(
        &mut self,
        cursor: Option<&Cursor>,
    ) -> Result<Option<StateUpdate>, BackendError> {
        let req = script::Request::run("", true, cursor);
        Ok(match self.helper_call(&req).await? {
            Ok(result) => script::parse_wrapped(result, &req.markers)
                .ok()
                .and_then(|out| state_update(out.report.state)),
            Err(_) => None,
        })
    }

    /// The addon's protocol level, asked once per connection. The classic addon does not know
    /// `get_addon_info` (an error reply): protocol 0.
    async fn addon_info(&mut self) -> Result<AddonInfo, BackendError> {
        if let Some(info) = &self.addon {
            return Ok(info.clone());
        }
        let info = match self.exchange("get_addon_info", None).await? {
            Ok(result) => AddonInfo {
                protocol_version: result
                    .get("protocol_version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                info: Some(result),
            },
            Err(_) => AddonInfo {
                protocol_version: 0,
                info: None,
            },
        };
        self.addon = Some(info.clone());
        Ok(info)
    }

    /// A PNG of the viewport. Protocol 14+ returns the image in the reply; older addons can
    /// only write a file on Blender's disk, which this server can read only when Blender runs
    /// on this machine.
    async fn screenshot(&mut self, max_size: u32) -> Result<Answer, BackendError> {
        let protocol = self.addon_info().await?.protocol_version;
        // The file is removed however this ends, even when the operation is dropped midway.
        let file = if protocol >= 14 {
            None
        } else if self.local {
            Some(TempFile(std::env::temp_dir().join(format!(
                "blender-session-mcp-{}.png",
                uuid::Uuid::new_v4().simple()
            ))))
        } else {
            return Ok(Answer::failed(BackendError::ScreenshotNeedsLocalBlender {
                target: Target::new(self.conn.peer().ip().to_string(), self.conn.peer().port()),
                protocol,
            }));
        };
        let params = match &file {
            None => json!({"max_size": max_size, "format": "png", "return_data": true}),
            Some(TempFile(path)) => {
                json!({"max_size": max_size, "format": "png", "filepath": path.to_string_lossy()})
            }
        };
        let exchanged = self
            .exchange("get_viewport_screenshot", Some(&params))
            .await;
        let answer = match exchanged {
            Err(e) => Err(e),
            Ok(Err(e)) => Ok(Answer::failed(e)),
            Ok(Ok(result)) => Ok(match in_band(&result) {
                Some(answer) => answer,
                None => {
                    let shot = match &file {
                        None => decode_image_data(&result),
                        Some(TempFile(path)) => read_image_file(&result, path).await,
                    };
                    Answer {
                        recorded: json!({"width": result.get("width"), "height": result.get("height")}),
                        output: shot.map(Output::Screenshot),
                        state: None,
                        read_state: false,
                    }
                }
            }),
        };
        drop(file);
        answer
    }

    async fn operate(
        &mut self,
        op: &Operation,
        cursor: Option<&Cursor>,
    ) -> Result<Answer, BackendError> {
        match op {
            Operation::ExecuteCode { code } => self.execute_code(code, cursor).await,
            Operation::SceneInfo(query) => self.scene_info(query, cursor).await,
            Operation::ObjectInfo { name } => {
                self.raw(
                    "get_object_info",
                    Some(&json!({ "name": name })),
                    Output::Object,
                )
                .await
            }
            Operation::Screenshot { max_size } => self.screenshot(*max_size).await,
            Operation::AddonInfo => {
                let info = self.addon_info().await?;
                Ok(Answer {
                    recorded: serde_json::to_value(&info).unwrap_or(Value::Null),
                    output: Ok(Output::Addon(info)),
                    state: None,
                    read_state: false,
                })
            }
            Operation::Raw { command, params } => {
                self.raw(command, params.as_ref(), Output::Raw).await
            }
        }
    }
}

impl Link for ClassicLink {
    fn probe_idle(&mut self) -> IdleState {
        match &self.broken {
            Some(why) => IdleState::Broken(why.to_string()),
            None => self.conn.probe_idle(),
        }
    }

    fn call<'a>(
        &'a mut self,
        op: &'a Operation,
        cursor: Option<&'a Cursor>,
    ) -> BoxFuture<'a, Result<Answer, BackendError>> {
        Box::pin(self.operate(op, cursor))
    }

    fn read_state<'a>(
        &'a mut self,
        cursor: Option<&'a Cursor>,
    ) -> BoxFuture<'a, Result<Option<StateUpdate>, BackendError>> {
        Box::pin(self.state_now(cursor))
    }

    fn interrupt(&self) -> Option<BoxFuture<'static, ()>> {
        if !self.conn.can_cancel() {
            return None;
        }
        let peer = self.conn.peer();
        let target = Target::new(peer.ip().to_string(), peer.port());
        let config = self.config.clone();
        Some(Box::pin(async move {
            let limit = std::time::Duration::from_secs(2);
            let Ok(mut conn) = Connection::connect(&target, limit, config.max_reply_bytes).await
            else {
                return;
            };
            if let Ok(request) = encode_request("cancel", None, config.max_request_bytes) {
                match tokio::time::timeout(limit, conn.round_trip(&request)).await {
                    Ok(Ok(_)) => {
                        tracing::info!("asked Blender at {target} to stop the cancelled command")
                    }
                    _ => tracing::warn!(
                        "Blender at {target} did not answer the request to stop the cancelled command"
                    ),
                }
            }
            conn.close().await;
        }))
    }

    fn wait_reply(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(self.conn.readable())
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(self.conn.close())
    }
}

/// The helper's state report as an update; a malformed one is logged and dropped (the
/// session keeps its cursor, so the next report covers the same changes).
fn state_update(state: Option<script::HelperState>) -> Option<StateUpdate> {
    match state?.into_update() {
        Ok(update) => Some(update),
        Err(problem) => {
            tracing::warn!("{problem}");
            None
        }
    }
}

/// The in-band error layer of a success reply, as an answer.
fn in_band(result: &Value) -> Option<Answer> {
    in_band_error(result).map(|message| Answer {
        output: Err(BackendError::Blender { message }),
        recorded: recordable(result),
        state: None,
        read_state: false,
    })
}

/// A temporary file removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A failed round trip as the session layer sees it.
fn link_error(command: &str, e: ConnectionError) -> BackendError {
    let command = command.to_owned();
    match e {
        ConnectionError::Protocol(ProtocolError::ReplyTooLarge { limit }) => {
            BackendError::ReplyTooLarge { command, limit }
        }
        ConnectionError::Protocol(source) => BackendError::Protocol {
            command,
            source: Box::new(source),
        },
        source => BackendError::ConnectionLost {
            command,
            source: Box::new(source),
        },
    }
}

fn decode_image_data(result: &Value) -> Result<Screenshot, BackendError> {
    let data = result
        .get("image_data")
        .and_then(Value::as_str)
        .ok_or_else(|| BackendError::Unexpected("the screenshot reply has no image_data".into()))?;
    let png = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| {
            BackendError::Unexpected(format!("the screenshot is not valid base64: {e}"))
        })?;
    Ok(Screenshot {
        png,
        width: result.get("width").and_then(Value::as_u64),
        height: result.get("height").and_then(Value::as_u64),
    })
}

async fn read_image_file(
    result: &Value,
    path: &std::path::Path,
) -> Result<Screenshot, BackendError> {
    match tokio::fs::read(path).await {
        Ok(png) => Ok(Screenshot {
            png,
            width: result.get("width").and_then(Value::as_u64),
            height: result.get("height").and_then(Value::as_u64),
        }),
        Err(e) => Err(BackendError::Unexpected(format!(
            "Blender reported a screenshot at {} but it cannot be read here: {e}",
            path.display()
        ))),
    }
}
