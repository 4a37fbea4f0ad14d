//! The BlenderMCP addon's wire codec: request encoding and incremental reply decoding.
//!
//! The addon's protocol has no framing: a request is one JSON object, a reply is one JSON
//! object, and the only way to find the end of a reply is to parse it. This module owns the
//! wire rules of the classic protocol (see [`super`]) that concern bytes:
//!
//! * requests are encoded with **every non-ASCII character escaped** as `\uXXXX` (the classic
//!   addon dies when a multi-byte character straddles its 8 KiB read boundary), and are capped
//!   in size (the addon's parse is quadratic in the request size);
//! * replies are decoded **incrementally** by [`ReplyDecoder`], which scans each new chunk once
//!   (linear in the reply size) and parses the first complete JSON value exactly once;
//! * bytes left over after that value mean the stream is out of sync ([`ProtocolError::TrailingData`]);
//! * a reply larger than the configured cap stops the read ([`ProtocolError::ReplyTooLarge`]);
//! * both error layers are surfaced: a `status: "error"` reply ([`Reply::Error`]) and an
//!   in-band failure inside a success reply ([`in_band_error`]).

use std::io;

use serde::Serialize;
use serde_json::{Value, ser::Formatter};

/// A codec-level failure: the bytes on the wire cannot be trusted any more.
///
/// Every variant means the connection that produced it must be dropped.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The reply grew past the reply size cap before it was complete.
    #[error("Blender's reply exceeded the {limit}-byte limit")]
    ReplyTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// Non-whitespace bytes followed the first complete reply: the stream is desynchronised.
    #[error(
        "Blender sent {extra} unexpected byte(s) after its reply; the stream is out of sync and the connection was dropped"
    )]
    TrailingData {
        /// How many bytes were left over.
        extra: usize,
    },
    /// The bytes are not a JSON reply of the addon's shape.
    #[error("Blender sent something that is not a valid reply: {detail}")]
    Malformed {
        /// What was wrong.
        detail: String,
    },
    /// The encoded request is larger than the request size cap; nothing was sent.
    #[error("the request is over the {limit}-byte limit (at least {size} bytes); nothing was sent")]
    RequestTooLarge {
        /// Size of the encoded request.
        size: usize,
        /// The cap in bytes.
        limit: usize,
    },
}

/// One decoded reply from the addon.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `{"status": "success", "result": ...}`. The result may still carry an in-band error:
    /// see [`in_band_error`].
    Success(Value),
    /// `{"status": "error", "message": "..."}`: Blender refused or failed the command. The
    /// connection stays usable.
    Error(String),
}

impl Reply {
    /// Interpret a decoded JSON value as an addon reply.
    pub fn from_value(value: Value) -> Result<Self, ProtocolError> {
        let Value::Object(mut map) = value else {
            return Err(ProtocolError::Malformed {
                detail: "the reply is not a JSON object".into(),
            });
        };
        match map.get("status").and_then(Value::as_str) {
            Some("success") => Ok(Reply::Success(map.remove("result").unwrap_or(Value::Null))),
            Some("error") => {
                let message = match map.remove("message") {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => "Blender reported an error without a message".into(),
                };
                Ok(Reply::Error(message))
            }
            Some(other) => Err(ProtocolError::Malformed {
                detail: format!("unknown status {other:?}"),
            }),
            None => Err(ProtocolError::Malformed {
                detail: "the reply has no \"status\" field".into(),
            }),
        }
    }
}

/// The in-band error layer: a success reply whose result says it failed.
///
/// The addon's handlers report some failures as `{"error": "..."}` or
/// `{"succeed": false, ...}` inside a `status: "success"` reply. Returns the message to show.
pub fn in_band_error(result: &Value) -> Option<String> {
    let map = result.as_object()?;
    match map.get("error") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::String(s)) => return Some(s.clone()),
        Some(other) => return Some(other.to_string()),
    }
    if map.get("succeed") == Some(&Value::Bool(false)) {
        let detail = ["message", "reason", "status"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_str));
        return Some(match detail {
            Some(d) => format!("the command did not succeed: {d}"),
            None => format!("the command did not succeed: {result}"),
        });
    }
    None
}

/// A `serde_json` formatter that escapes every non-ASCII character as `\uXXXX` (with
/// surrogate pairs above U+FFFF), as Python's `json.dumps` does by default.
struct AsciiFormatter;

impl Formatter for AsciiFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if ch.is_ascii() {
                continue;
            }
            writer.write_all(&bytes[start..i])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + ch.len_utf8();
        }
        writer.write_all(&bytes[start..])
    }
}

/// Encode `{"type": command, "params": params}` as pure-ASCII JSON bytes.
///
/// `params` is omitted when `None`. Fails with [`ProtocolError::RequestTooLarge`] when the
/// encoded request is longer than `limit` bytes.
///
/// ```
/// use blender_session_mcp::backend::classic::protocol::encode_request;
/// let bytes = encode_request("execute_code", Some(&serde_json::json!({"code": "print('立方体')"})), 1024)?;
/// assert_eq!(bytes, br#"{"type":"execute_code","params":{"code":"print('\u7acb\u65b9\u4f53')"}}"#);
/// # Ok::<(), blender_session_mcp::backend::classic::ProtocolError>(())
/// ```
pub fn encode_request(
    command: &str,
    params: Option<&Value>,
    limit: usize,
) -> Result<Vec<u8>, ProtocolError> {
    #[derive(serde::Serialize)]
    struct Request<'a> {
        #[serde(rename = "type")]
        command: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        params: Option<&'a Value>,
    }
    // Stop serializing as soon as the limit is passed: a 100 MB request costs no more than
    // the limit.
    let mut out = LimitedWriter {
        bytes: Vec::with_capacity(128),
        limit,
        exceeded: false,
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    let written = Request { command, params }.serialize(&mut ser);
    if out.exceeded {
        return Err(ProtocolError::RequestTooLarge {
            size: out.bytes.len().max(limit + 1),
            limit,
        });
    }
    match written {
        Ok(()) => Ok(out.bytes),
        Err(e) => Err(ProtocolError::Malformed {
            detail: format!("the request could not be encoded: {e}"),
        }),
    }
}

/// A `Vec` writer that refuses to grow past `limit` bytes.
struct LimitedWriter {
    bytes: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl io::Write for LimitedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("request size limit exceeded"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serialize any value as JSON with all non-ASCII characters escaped.
pub fn encode_ascii<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    // Serializing JSON-shaped data into a Vec cannot fail: keys are strings and writes to a
    // Vec are infallible.
    if value.serialize(&mut ser).is_err() {
        out.clear();
        out.extend_from_slice(b"null");
    }
    out
}

/// Incremental decoder for one reply.
///
/// Feed it the bytes read from the socket, chunk by chunk; it returns the reply as soon as the
/// first complete JSON value has arrived. Each byte is scanned once, and the value is parsed
/// once, so decoding is linear in the reply size whatever the chunking.
#[derive(Debug)]
pub struct ReplyDecoder {
    buf: Vec<u8>,
    scanned: usize,
    depth: usize,
    started: bool,
    in_string: bool,
    escaped: bool,
    limit: usize,
    can_cancel: bool,
}

impl ReplyDecoder {
    /// A decoder that refuses replies longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ReplyDecoder {
            buf: Vec::new(),
            scanned: 0,
            depth: 0,
            started: false,
            in_string: false,
            escaped: false,
            limit,
            can_cancel: false,
        }
    }

    /// Whether the decoded reply said its server stops a command on `cancel` (this project's
    /// headless server does; the classic addon does not).
    pub fn can_cancel(&self) -> bool {
        self.can_cancel
    }

    /// Bytes buffered so far.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many more bytes the size cap allows.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.buf.len())
    }

    /// The buffer itself, for a reader to append to without an intermediate copy (append at
    /// most [`ReplyDecoder::room`] bytes, then call [`ReplyDecoder::decode_appended`]).
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Decode after bytes were appended through [`ReplyDecoder::buffer_mut`].
    pub fn decode_appended(&mut self) -> Result<Option<Reply>, ProtocolError> {
        let reply = self.scan()?;
        if reply.is_none() && self.buf.len() >= self.limit {
            return Err(ProtocolError::ReplyTooLarge { limit: self.limit });
        }
        Ok(reply)
    }

    /// Append a chunk. Returns `Ok(Some(reply))` once a complete reply is in, `Ok(None)` while
    /// more bytes are needed, and an error when the stream cannot be a valid reply.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<Reply>, ProtocolError> {
        let room = self.limit.saturating_sub(self.buf.len());
        let (fits, rest) = chunk.split_at(chunk.len().min(room));
        self.buf.extend_from_slice(fits);
        let reply = self.scan()?;
        if rest.is_empty() {
            return Ok(reply);
        }
        match reply {
            Some(reply) => match count_non_whitespace(rest) {
                0 => Ok(Some(reply)),
                extra => Err(ProtocolError::TrailingData { extra }),
            },
            None => Err(ProtocolError::ReplyTooLarge { limit: self.limit }),
        }
    }

    fn scan(&mut self) -> Result<Option<Reply>, ProtocolError> {
        let mut i = self.scanned;
        while i < self.buf.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // Jump to the next quote or backslash: long strings (a big stdout) are
                // skipped at memchr speed instead of byte by byte.
                match memchr::memchr2(b'"', b'\\', &self.buf[i..]) {
                    None => i = self.buf.len(),
                    Some(offset) => {
                        if self.buf[i + offset] == b'\\' {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                        }
                        i += offset + 1;
                    }
                }
                continue;
            }
            let b = self.buf[i];
            i += 1;
            if !self.started {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => continue,
                    b'{' => {
                        self.started = true;
                        self.depth = 1;
                        continue;
                    }
                    _ => {
                        return Err(ProtocolError::Malformed {
                            detail: format!(
                                "expected a JSON object, got {:?}",
                                preview(&self.buf[i - 1..])
                            ),
                        });
                    }
                }
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.scanned = i;
                        return self.finish(i).map(Some);
                    }
                }
                _ => {}
            }
        }
        self.scanned = i;
        Ok(None)
    }

    fn finish(&mut self, end: usize) -> Result<Reply, ProtocolError> {
        let extra = count_non_whitespace(&self.buf[end..]);
        if extra > 0 {
            return Err(ProtocolError::TrailingData { extra });
        }
        let value: Value =
            serde_json::from_slice(&self.buf[..end]).map_err(|e| ProtocolError::Malformed {
                detail: format!("{e} (in {:?})", preview(&self.buf[..end])),
            })?;
        // This project's headless server marks its replies: it stops a command on `cancel`.
        self.can_cancel = value.get("can_cancel") == Some(&Value::Bool(true));
        Reply::from_value(value)
    }
}

fn count_non_whitespace(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| !b.is_ascii_whitespace()).count()
}

fn preview(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(80)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > cut.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests;
