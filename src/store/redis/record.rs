//! A session record as the fields of its `{p}session:{id}` hash, and back.
//!
//! | field | value |
//! |---|---|
//! | `id`, `owner` | text |
//! | `name` | text, absent when the session has none |
//! | `host`, `port` | its Blender |
//! | `created_at`, `last_activity` | Unix seconds |
//! | `status` | `open` or `closed` |
//! | `closed_at`, `close_reason` | when closed: Unix seconds, `closed` / `idle` / `shutdown` |
//! | `state`, `state_version` | the tracked state (JSON text, never read by the store), bumped per write |
//! | `last_command`, `last_result` | the last command sent and its result (JSON) |
//! | `seq`, `kept` | commands ever recorded (the last sequence number), entries kept |
//! | `lease_holder`, `lease_until` | the lease, when held: holder id, Unix seconds |
//!
//! Numbers are written as Rust prints them (shortest round-trip form), so a time read back is
//! the time written.
//!
//! A session's shares are a hash of their own, `{p}shares:{id}` (user → `read` / `write`),
//! read with the record ([`with_shares`]); a script that returns a record returns its shares
//! first ([`from_reply`]).

use std::collections::HashMap;

use crate::backend::Target;
use crate::session::events::CloseReason;
use crate::store::{Access, Lease, NewSession, Share, Status, StoredSession};

/// Why a stored record could not be read.
pub type Bad = String;

/// The fields a new session's hash starts with.
pub fn new_fields(new: &NewSession) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("id", new.id.clone()),
        ("owner", new.owner.clone()),
        ("host", new.target.host.clone()),
        ("port", new.target.port.to_string()),
        ("created_at", new.now.to_string()),
        ("last_activity", new.now.to_string()),
        ("status", Status::Open.as_str().to_owned()),
        ("state_version", "0".to_owned()),
        ("seq", "0".to_owned()),
        ("kept", "0".to_owned()),
    ];
    if let Some(name) = &new.name {
        fields.push(("name", name.clone()));
    }
    fields
}

/// The name a close reason is stored under.
pub fn reason_name(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Closed => "closed",
        CloseReason::Idle => "idle",
        CloseReason::Shutdown => "shutdown",
    }
}

fn reason_of(name: &str) -> Result<CloseReason, Bad> {
    match name {
        "closed" => Ok(CloseReason::Closed),
        "idle" => Ok(CloseReason::Idle),
        "shutdown" => Ok(CloseReason::Shutdown),
        other => Err(format!("unknown close reason {other:?}")),
    }
}

/// A record from its hash fields; `None` for an empty hash (no such session).
pub fn from_fields(mut f: HashMap<String, String>) -> Result<Option<StoredSession>, Bad> {
    if f.is_empty() {
        return Ok(None);
    }
    let text = |f: &mut HashMap<String, String>, k: &str| {
        f.remove(k).ok_or_else(|| format!("field {k} missing"))
    };
    let num = |f: &mut HashMap<String, String>, k: &str| -> Result<f64, Bad> {
        let v = text(f, k)?;
        v.parse()
            .map_err(|_| format!("field {k} is not a number: {v:?}"))
    };
    let count = |f: &mut HashMap<String, String>, k: &str| -> Result<u64, Bad> {
        match f.remove(k) {
            None => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| format!("field {k} is not a count: {v:?}")),
        }
    };
    let id = text(&mut f, "id")?;
    let port = text(&mut f, "port")?;
    let port = port
        .parse()
        .map_err(|_| format!("field port is not a port: {port:?}"))?;
    let target = Target::new(text(&mut f, "host")?, port);
    let status = match text(&mut f, "status")?.as_str() {
        "open" => Status::Open,
        "closed" => Status::Closed,
        other => return Err(format!("unknown status {other:?}")),
    };
    let closed = match status {
        Status::Open => None,
        Status::Closed => Some((
            num(&mut f, "closed_at")?,
            reason_of(&text(&mut f, "close_reason")?)?,
        )),
    };
    let lease = match f.remove("lease_holder") {
        None => None,
        Some(holder) => Some(Lease {
            holder,
            until: num(&mut f, "lease_until")?,
        }),
    };
    let last_result = match f.remove("last_result") {
        None => None,
        Some(v) => Some(
            serde_json::from_str(&v).map_err(|e| format!("field last_result is not JSON: {e}"))?,
        ),
    };
    Ok(Some(StoredSession {
        id,
        name: f.remove("name"),
        owner: text(&mut f, "owner")?,
        target,
        created_at: num(&mut f, "created_at")?,
        last_activity: num(&mut f, "last_activity")?,
        status,
        closed,
        state: f.remove("state").map(Into::into),
        state_version: count(&mut f, "state_version")?,
        last_command: f.remove("last_command"),
        last_result,
        command_count: count(&mut f, "seq")?,
        history_kept: count(&mut f, "kept")?,
        lease,
        shares: Vec::new(),
    }))
}

/// A record from its hash fields and the fields of its shares hash.
pub fn with_shares(
    fields: HashMap<String, String>,
    shares: HashMap<String, String>,
) -> Result<Option<StoredSession>, Bad> {
    let Some(mut s) = from_fields(fields)? else {
        return Ok(None);
    };
    s.shares = shares_of(shares)?;
    Ok(Some(s))
}

/// Shares from the fields of a `{p}shares:{id}` hash, sorted by user.
pub fn shares_of(fields: HashMap<String, String>) -> Result<Vec<Share>, Bad> {
    let mut shares = fields
        .into_iter()
        .map(|(user, access)| {
            let access = access
                .parse::<Access>()
                .map_err(|e| format!("a share of {user:?}: {e}"))?;
            Ok(Share { user, access })
        })
        .collect::<Result<Vec<_>, Bad>>()?;
    shares.sort_by(|a, b| a.user.cmp(&b.user));
    Ok(shares)
}

/// A script's reply carrying a record: `n`, the shares hash as `n` items (user, access,
/// ...), then the record's `field, value, ...`; empty for no record.
pub fn from_reply(reply: Vec<String>) -> Result<Option<StoredSession>, Bad> {
    let mut it = reply.into_iter();
    let Some(n) = it.next() else {
        return Ok(None);
    };
    let n: usize = n
        .parse()
        .map_err(|_| format!("a reply begins with {n:?}, not a count"))?;
    let shares = pairs(it.by_ref().take(n));
    with_shares(pairs(it), shares)
}

fn pairs(flat: impl Iterator<Item = String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut it = flat;
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_record_reads_back_as_created() {
        let new = NewSession {
            id: "s-1".into(),
            name: Some("shared".into()),
            owner: "local".into(),
            target: Target::new("127.0.0.1", 9876),
            now: 1_764_585_600.123_456,
        };
        let fields: HashMap<String, String> = new_fields(&new)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let s = from_fields(fields).expect("reads").expect("exists");
        assert_eq!(s.id, "s-1");
        assert_eq!(s.name.as_deref(), Some("shared"));
        assert_eq!(
            s.created_at, 1_764_585_600.123_456,
            "times round-trip exactly"
        );
        assert_eq!(s.status, Status::Open);
        assert!(s.lease.is_none() && s.closed.is_none() && s.state.is_none());
        assert!(from_fields(HashMap::new()).expect("reads").is_none());
    }

    #[test]
    fn a_scripts_reply_carries_the_shares_first() {
        let new = NewSession {
            id: "s-1".into(),
            name: None,
            owner: "olga".into(),
            target: Target::new("127.0.0.1", 9876),
            now: 1.0,
        };
        let mut reply = vec!["4".to_owned()];
        reply.extend(["zoe", "read", "*", "write"].map(str::to_owned));
        for (k, v) in new_fields(&new) {
            reply.extend([k.to_owned(), v]);
        }
        let s = from_reply(reply).expect("reads").expect("exists");
        let shares: Vec<(&str, Access)> = s
            .shares
            .iter()
            .map(|s| (s.user.as_str(), s.access))
            .collect();
        assert_eq!(
            shares,
            [("*", Access::Write), ("zoe", Access::Read)],
            "sorted"
        );
        assert!(from_reply(Vec::new()).expect("reads").is_none());
        let bad: HashMap<String, String> = [("bob".to_owned(), "admin".to_owned())].into();
        let e = shares_of(bad).expect_err("no such access");
        assert!(e.contains("bob"), "{e}");
    }

    #[test]
    fn a_damaged_record_says_what_is_wrong() {
        let fields: HashMap<String, String> = [("id", "x"), ("port", "many")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let e = from_fields(fields).expect_err("bad port");
        assert!(e.contains("port"), "{e}");
    }
}
