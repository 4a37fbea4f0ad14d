//! Who besides its owner may use a session: [`Access`] levels, [`Share`]s of a session with
//! a user (or with [`EVERYONE`]), and [`StoredSession::access_of`], the access a user has.
//!
//! The stores keep a session's shares apart from its record (SQLite: the `shares` table;
//! Redis: the `{p}shares:{id}` hash), so the command path never reads or writes them; they
//! are read with the session (`get`, pages, lists) and set by
//! [`SessionStore::share`](super::SessionStore::share).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::StoredSession;

/// The user a share with means every user.
pub const EVERYONE: &str = "*";

/// What a user may do with a session. [`Access::Write`] implies [`Access::Read`]; the order
/// is that of strength (`Read < Write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// See the session: its info, state and history.
    Read,
    /// Also run commands in it and change it (implies [`Access::Read`]).
    Write,
}

impl Access {
    /// The lowercase name (`read`, `write`), as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }

    /// Whether this access is enough for `needed` (`Write` allows both).
    pub fn allows(self, needed: Access) -> bool {
        self >= needed
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not an [`Access`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an access level (read or write)")]
pub struct UnknownAccess(pub String);

impl FromStr for Access {
    type Err = UnknownAccess;

    /// `read` or `write`, exactly (as [`Access::as_str`] writes them).
    fn from_str(text: &str) -> Result<Self, UnknownAccess> {
        match text {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            other => Err(UnknownAccess(other.to_owned())),
        }
    }
}

/// A session shared with a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Share {
    /// The user, or [`EVERYONE`].
    pub user: String,
    /// What they may do.
    pub access: Access,
}

impl StoredSession {
    /// What `user` may do with this session: [`Access::Write`] for its owner, otherwise the
    /// stronger of its share with `user` and its share with [`EVERYONE`]; `None` when it
    /// has neither.
    pub fn access_of(&self, user: &str) -> Option<Access> {
        if self.owner == user {
            return Some(Access::Write);
        }
        self.shares
            .iter()
            .filter(|s| s.user == user || s.user == EVERYONE)
            .map(|s| s.access)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Target;
    use crate::store::NewSession;

    fn session(shares: &[(&str, Access)]) -> StoredSession {
        let mut s = StoredSession::new(NewSession {
            id: "s".into(),
            name: None,
            owner: "olga".into(),
            target: Target::new("127.0.0.1", 9876),
            now: 1.0,
        });
        s.shares = shares
            .iter()
            .map(|(user, access)| Share {
                user: (*user).into(),
                access: *access,
            })
            .collect();
        s
    }

    #[test]
    fn access_names_round_trip_and_others_are_refused() {
        for a in [Access::Read, Access::Write] {
            assert_eq!(a.as_str().parse::<Access>(), Ok(a));
            assert_eq!(
                serde_json::to_string(&a).expect("serializes"),
                format!("\"{a}\"")
            );
        }
        let e = "Write".parse::<Access>().expect_err("exact names only");
        assert!(e.to_string().contains("read or write"), "{e}");
        assert!(Access::Write.allows(Access::Read) && !Access::Read.allows(Access::Write));
    }

    #[test]
    fn the_owner_writes_and_the_strongest_share_wins() {
        let s = session(&[]);
        assert_eq!(s.access_of("olga"), Some(Access::Write));
        assert_eq!(s.access_of("bob"), None);
        let s = session(&[("bob", Access::Read), (EVERYONE, Access::Write)]);
        assert_eq!(
            s.access_of("bob"),
            Some(Access::Write),
            "everyone's is stronger"
        );
        assert_eq!(s.access_of("carl"), Some(Access::Write));
        let s = session(&[("bob", Access::Write), (EVERYONE, Access::Read)]);
        assert_eq!(s.access_of("bob"), Some(Access::Write), "bob's is stronger");
        assert_eq!(s.access_of("carl"), Some(Access::Read));
        let s = session(&[("olga", Access::Read)]);
        assert_eq!(
            s.access_of("olga"),
            Some(Access::Write),
            "the owner always writes"
        );
    }
}
