//! Per-session command history: a bounded ring of [`HistoryEntry`] records.
//!
//! Every command a session sends is recorded once, whatever its outcome, with the addon
//! command type, the MCP tool that caused it, its arguments, the result or message, and the
//! duration. Memory is bounded twice: at most `limit` entries are kept (older ones are dropped
//! and counted), and large arguments or results are stored as a truncated preview.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;

/// Largest serialized size of an argument or result value stored as is; larger ones are kept
/// as a truncated preview.
pub const MAX_RECORDED_VALUE_BYTES: usize = 16 * 1024;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Blender answered and the command succeeded.
    Success,
    /// Blender answered with an error (either error layer, or the user's code raised), or the
    /// reply could not be read.
    Error,
    /// No reply within `--command-timeout`; the command may still be running in Blender.
    Timeout,
    /// The MCP client cancelled the call, or the session was closed while it waited or ran.
    Cancelled,
    /// The connection broke after the command was written; it may or may not have run.
    ConnectionLost,
    /// Blender could not be reached; nothing was sent.
    Unreachable,
}

impl Outcome {
    /// The snake_case name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::ConnectionLost => "connection_lost",
            Outcome::Unreachable => "unreachable",
        }
    }
}

/// One recorded command.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HistoryEntry {
    /// 1-based sequence number within the session; never reused.
    pub seq: u64,
    /// When the command started, in Unix seconds.
    pub timestamp: f64,
    /// The addon command type sent to Blender (e.g. `execute_code`).
    pub command: String,
    /// The MCP tool that caused the command (e.g. `execute_blender_code`).
    pub tool: String,
    /// The arguments as the tool received them (large values truncated).
    pub arguments: Value,
    /// How the command ended.
    pub outcome: Outcome,
    /// The result, on success (large values truncated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error message, when the command did not succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Wall-clock duration in seconds, including waiting for the session's previous command.
    pub duration: f64,
}

/// A bounded history.
#[derive(Debug)]
pub struct History {
    entries: VecDeque<HistoryEntry>,
    limit: usize,
    dropped: u64,
    next_seq: u64,
}

impl History {
    /// An empty history keeping at most `limit` entries.
    pub fn new(limit: usize) -> Self {
        History {
            entries: VecDeque::new(),
            limit,
            dropped: 0,
            next_seq: 1,
        }
    }

    /// Record an entry; its `seq` is assigned here. Returns the sequence number.
    pub fn push(&mut self, mut entry: HistoryEntry) -> u64 {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        if self.limit == 0 {
            self.dropped += 1;
            return entry.seq;
        }
        while self.entries.len() >= self.limit {
            self.entries.pop_front();
            self.dropped += 1;
        }
        let seq = entry.seq;
        self.entries.push_back(entry);
        seq
    }

    /// The newest `limit` entries (all when `None`), oldest first.
    pub fn recent(&self, limit: Option<usize>) -> Vec<HistoryEntry> {
        let n = limit.unwrap_or(self.entries.len()).min(self.entries.len());
        self.entries
            .iter()
            .skip(self.entries.len() - n)
            .cloned()
            .collect()
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries dropped to respect the limit.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Commands ever recorded.
    pub fn total(&self) -> u64 {
        self.next_seq - 1
    }
}

/// A string as it should be stored in history, without copying more than is kept.
pub fn recordable_str(s: &str) -> Value {
    Value::String(truncate_str(s, MAX_RECORDED_VALUE_BYTES))
}

/// A value as it should be stored in history: itself when small, else a preview.
pub fn recordable(value: &Value) -> Value {
    match value {
        Value::String(s) if s.len() <= MAX_RECORDED_VALUE_BYTES => value.clone(),
        Value::String(s) => Value::String(truncate_str(s, MAX_RECORDED_VALUE_BYTES)),
        Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
        Value::Array(_) | Value::Object(_) => {
            let text = value.to_string();
            if text.len() <= MAX_RECORDED_VALUE_BYTES {
                return value.clone();
            }
            if let Value::Object(map) = value {
                // Keep the shape for objects with a few big string fields (e.g. `code`).
                let shrunk: serde_json::Map<String, Value> = map
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            shrink(v, MAX_RECORDED_VALUE_BYTES / map.len().max(1)),
                        )
                    })
                    .collect();
                let shrunk = Value::Object(shrunk);
                if shrunk.to_string().len() <= MAX_RECORDED_VALUE_BYTES * 2 {
                    return shrunk;
                }
            }
            serde_json::json!({
                "truncated": true,
                "bytes": text.len(),
                "preview": truncate_str(&text, MAX_RECORDED_VALUE_BYTES),
            })
        }
    }
}

fn shrink(value: &Value, budget: usize) -> Value {
    match value {
        Value::String(s) if s.len() > budget => Value::String(truncate_str(s, budget)),
        Value::Array(_) | Value::Object(_) if value.to_string().len() > budget => {
            serde_json::json!({"truncated": true, "bytes": value.to_string().len()})
        }
        _ => value.clone(),
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with a note of what was cut.
pub fn truncate_str(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… [{} more bytes not kept]", &s[..cut], s.len() - cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> HistoryEntry {
        HistoryEntry {
            seq: 0,
            timestamp: 0.0,
            command: "execute_code".into(),
            tool: "execute_blender_code".into(),
            arguments: json!({}),
            outcome: Outcome::Success,
            result: None,
            message: None,
            duration: 0.0,
        }
    }

    #[test]
    fn keeps_the_newest_and_counts_dropped() {
        let mut h = History::new(3);
        for _ in 0..5 {
            h.push(entry());
        }
        assert_eq!(h.len(), 3);
        assert_eq!(h.dropped(), 2);
        assert_eq!(h.total(), 5);
        let seqs: Vec<u64> = h.recent(None).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        let seqs: Vec<u64> = h.recent(Some(2)).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![4, 5]);
    }

    #[test]
    fn large_values_are_truncated_but_keep_their_keys() {
        let big = json!({"code": "é".repeat(50_000)});
        let kept = recordable(&big);
        assert!(kept.to_string().len() < 40 * 1024);
        assert!(
            kept["code"]
                .as_str()
                .expect("string")
                .contains("more bytes not kept")
        );
        let small = json!({"code": "print(1)"});
        assert_eq!(recordable(&small), small);
    }
}
