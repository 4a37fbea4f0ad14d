//! Per-session command history: a bounded ring of [`HistoryEntry`] records.
//!
//! Every command a session sends is recorded once, whatever its outcome, with the addon
//! command type, the MCP tool that caused it, its arguments, the result or message, and the
//! duration. Memory is bounded twice: at most `limit` entries are kept (older ones are dropped
//! and counted), and large arguments or results are stored as a truncated preview.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::preview::{MAX_RECORDED_VALUE_BYTES, recordable, recordable_str, truncate_str};

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Sent (or about to be), not finished yet: the entry is written as running before the
    /// command goes to Blender.
    Running,
    /// The server stopped while the command was in flight; Blender may or may not have run it.
    Interrupted,
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
            Outcome::Running => "running",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// One recorded command.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// What else the caller was told, e.g. that Blender was still running a cancelled command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A bounded history.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

    /// Count a command numbered `seq` elsewhere (by the session store) without keeping it.
    pub fn count(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq + 1);
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

/// A successful `execute_code` entry with nothing recorded, for tests.
#[cfg(test)]
pub(crate) fn test_entry() -> HistoryEntry {
    HistoryEntry {
        seq: 0,
        timestamp: 0.0,
        command: "execute_code".into(),
        tool: "execute_blender_code".into(),
        arguments: serde_json::json!({}),
        outcome: Outcome::Success,
        result: None,
        message: None,
        duration: 0.0,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> HistoryEntry {
        test_entry()
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
