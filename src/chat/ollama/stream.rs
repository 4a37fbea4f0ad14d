//! Folding Ollama's streamed `/api/chat` answer: NDJSON lines, split by a [`LinesCodec`] as
//! the bytes arrive, each a chunk of content, thinking or tool calls, the last one `done: true`
//! with the token counts (or an `{"error": …}` line when the model fails mid-answer).

use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

use super::super::llm::{LlmError, Reply, WireCall};

/// The longest line of the `/api/chat` stream that is read (a tool call, code and all, comes
/// whole in one line).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// One line of the `/api/chat` stream, as far as this client reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Chunk {
    error: Option<Value>,
    message: Option<ChunkMessage>,
    done: bool,
    done_reason: Option<String>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChunkMessage {
    content: Option<String>,
    thinking: Option<String>,
    tool_calls: Option<Vec<WireCall>>,
}

/// Folds the NDJSON chunks of one `/api/chat` answer into a [`Reply`].
#[derive(Debug)]
pub struct StreamFolder {
    reply: Reply,
    done: bool,
    pending: BytesMut,
    lines: LinesCodec,
}

impl Default for StreamFolder {
    fn default() -> Self {
        StreamFolder {
            reply: Reply::default(),
            done: false,
            pending: BytesMut::new(),
            lines: LinesCodec::new_with_max_length(MAX_LINE),
        }
    }
}

fn unreadable_line(e: LinesCodecError) -> LlmError {
    LlmError::BadReply(match e {
        LinesCodecError::MaxLineLengthExceeded => format!(
            "a line of the /api/chat stream is longer than {} MiB",
            MAX_LINE >> 20
        ),
        LinesCodecError::Io(e) => format!("a line of the /api/chat stream: {e}"),
    })
}

impl StreamFolder {
    /// Feed bytes as they arrive; a line can be split anywhere.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), LlmError> {
        self.pending.extend_from_slice(bytes);
        while let Some(line) = self
            .lines
            .decode(&mut self.pending)
            .map_err(unreadable_line)?
        {
            self.line(&line)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &str) -> Result<(), LlmError> {
        let text = line.trim();
        if text.is_empty() {
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_str(text)
            .map_err(|e| LlmError::BadReply(format!("a line of the /api/chat stream: {e}")))?;
        if let Some(err) = chunk.error {
            let message = match err {
                Value::String(s) => s,
                other => other.to_string(),
            };
            return Err(LlmError::MidStream(message));
        }
        if let Some(message) = chunk.message {
            self.reply
                .content
                .push_str(message.content.as_deref().unwrap_or_default());
            self.reply
                .thinking
                .push_str(message.thinking.as_deref().unwrap_or_default());
            self.reply.tool_calls.extend(
                message
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.into_tool_call(|| json!({}))),
            );
        }
        if chunk.done {
            self.done = true;
            self.reply.done_reason = chunk.done_reason;
            self.reply.prompt_tokens = chunk.prompt_eval_count;
            self.reply.output_tokens = chunk.eval_count;
        }
        Ok(())
    }

    /// Characters of answer so far.
    pub fn progress(&self) -> usize {
        self.reply.content.len() + self.reply.thinking.len()
    }

    /// The reply, once the stream has ended.
    pub fn finish(mut self) -> Result<Reply, LlmError> {
        while let Some(line) = self
            .lines
            .decode_eof(&mut self.pending)
            .map_err(unreadable_line)?
        {
            self.line(&line)?;
        }
        if !self.done {
            return Err(LlmError::BadReply(
                "the /api/chat stream ended before its final `done: true` chunk (did Ollama crash or run out of memory?)".into(),
            ));
        }
        Ok(self.reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_chunks_fold_across_any_split() {
        let stream = concat!(
            "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n",
            "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"lo ✓\"},\"done\":false}\n",
            "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_1\",\"function\":{\"index\":0,\"name\":\"get_scene_info\",\"arguments\":{}}}]},\"done\":false}\n",
            "{\"model\":\"m\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":120,\"eval_count\":9}\n",
        );
        for split in 1..stream.len() {
            let mut f = StreamFolder::default();
            f.feed(&stream.as_bytes()[..split]).unwrap();
            f.feed(&stream.as_bytes()[split..]).unwrap();
            let r = f.finish().unwrap();
            assert_eq!(r.content, "Hello ✓");
            assert_eq!(r.tool_calls.len(), 1);
            assert_eq!(r.tool_calls[0].id.as_deref(), Some("call_1"));
            assert_eq!(r.prompt_tokens, Some(120));
        }
    }

    #[test]
    fn error_line_and_early_end_are_errors() {
        let mut f = StreamFolder::default();
        let e = f
            .feed(b"{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"error\":\"out of memory\"}\n")
            .unwrap_err();
        assert!(matches!(e, LlmError::MidStream(ref m) if m == "out of memory"));
        let mut f = StreamFolder::default();
        f.feed(b"{\"message\":{\"content\":\"a\"},\"done\":false}\n")
            .unwrap();
        assert!(matches!(f.finish(), Err(LlmError::BadReply(_))));
    }

    #[test]
    fn crlf_blank_and_unterminated_lines_are_read() {
        let mut f = StreamFolder::default();
        f.feed(b"{\"message\":{\"content\":\"a\"},\"done\":false}\r\n\r\n")
            .unwrap();
        f.feed(b"{\"message\":{\"tool_calls\":[{\"function\":{\"arguments\":{}}},{\"function\":{\"name\":\"get_scene_info\"}}]},\"done\":false}\n")
            .unwrap();
        f.feed(b"{\"message\":{\"thinking\":\"t\",\"content\":null},\"done\":true,\"done_reason\":\"stop\"}")
            .unwrap();
        let r = f.finish().unwrap();
        assert_eq!((r.content.as_str(), r.thinking.as_str()), ("a", "t"));
        assert_eq!(r.done_reason.as_deref(), Some("stop"));
        assert_eq!(r.tool_calls.len(), 1, "a call without a name is dropped");
        assert_eq!(r.tool_calls[0].name, "get_scene_info");
        assert_eq!(r.tool_calls[0].arguments, json!({}));
        assert_eq!(r.tool_calls[0].id, None);
    }

    #[test]
    fn an_overlong_line_is_an_error() {
        let mut f = StreamFolder::default();
        let piece = vec![b'x'; 1 << 20];
        let e = (0..=MAX_LINE >> 20)
            .find_map(|_| f.feed(&piece).err())
            .expect("refused once past the limit");
        assert!(
            matches!(e, LlmError::BadReply(ref m) if m == "a line of the /api/chat stream is longer than 16 MiB"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_lines_are_errors() {
        for line in [
            &b"{\"message\":{\"content\":\"\xff\"},\"done\":false}\n"[..],
            b"{\"done\":\"yes\"}\n",
            b"not json\n",
        ] {
            let e = StreamFolder::default().feed(line).unwrap_err();
            assert!(
                matches!(e, LlmError::BadReply(ref m) if m.starts_with("a line of the /api/chat stream: ")),
                "{e}"
            );
        }
    }
}
