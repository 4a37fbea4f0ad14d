//! Who is calling over HTTP: bearer tokens mapped to users and their rights.
//!
//! - [`Rights`] and [`User`]: what a caller may do (`read`: read-only tools and resources;
//!   `exec`: everything).
//! - [`Authenticator`]: turns an `Authorization` header into a [`User`], comparing token
//!   hashes in constant time; built from one `--auth-token` or an auth file.
//! - [`file`]: the auth file (users, SHA-256 token hashes, rights) and the `token`
//!   subcommand's operations on it.
//!
//! Tokens are random (256 bits), shown once when made and stored only as their SHA-256: a
//! slow password hash buys nothing for secrets of that entropy, and a fast one keeps the
//! per-request check in microseconds.

pub mod file;

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use file::{AuthError, AuthFile, UserEntry};

/// The user of stdio clients and of unauthenticated loopback HTTP.
pub const LOCAL_USER: &str = "local";

/// The user a single `--auth-token` authenticates.
pub const TOKEN_USER: &str = "user";

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Rights {
    /// Read-only tools and resources.
    Read,
    /// Everything, including running code in Blender.
    #[default]
    Exec,
}

impl Rights {
    /// `read` or `exec`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rights::Read => "read",
            Rights::Exec => "exec",
        }
    }
}

impl std::str::FromStr for Rights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Ok(Rights::Read),
            "exec" => Ok(Rights::Exec),
            _ => Err(format!("{s:?} is not a right: use read or exec")),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name (owner of the sessions it creates).
    pub name: String,
    /// What it may do.
    pub rights: Rights,
}

impl User {
    /// The `local` user with every right (stdio, unauthenticated loopback HTTP).
    pub fn local() -> Self {
        User {
            name: LOCAL_USER.into(),
            rights: Rights::Exec,
        }
    }
}

/// A token's SHA-256, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// The stored text form: `sha256:` and 64 hex digits.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Parse [`TokenHash::to_text`]'s form.
    pub fn from_text(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TokenHash(out))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// A new random token: `bsm_` and 256 bits from the OS, base64url.
pub fn new_token() -> Result<String, AuthError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(format!(
        "bsm_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Checks bearer tokens.
#[derive(Clone)]
pub struct Authenticator {
    users: Vec<(TokenHash, User)>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .finish()
    }
}

impl Authenticator {
    /// One token for the user [`TOKEN_USER`] with every right.
    pub fn single(token: &str) -> Self {
        Authenticator {
            users: vec![(
                TokenHash::of(token),
                User {
                    name: TOKEN_USER.into(),
                    rights: Rights::Exec,
                },
            )],
        }
    }

    /// The users of an auth file.
    pub fn from_file(file: &AuthFile) -> Self {
        Authenticator {
            users: file
                .users
                .iter()
                .filter_map(|u| {
                    let hash = TokenHash::from_text(&u.token_sha256)?;
                    Some((
                        hash,
                        User {
                            name: u.user.clone(),
                            rights: u.rights,
                        },
                    ))
                })
                .collect(),
        }
    }

    /// How many tokens it accepts.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether it accepts none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user whose token `token` is. Every stored hash is compared (in constant time), so
    /// the time taken says nothing about which one matched or how much of it did.
    pub fn user_of_token(&self, token: &str) -> Option<User> {
        let hash = TokenHash::of(token);
        let mut found = None;
        for (h, user) in &self.users {
            if bool::from(h.0.ct_eq(&hash.0)) && found.is_none() {
                found = Some(user.clone());
            }
        }
        found
    }

    /// The user an `Authorization` header value names (`Bearer <token>`, the scheme in any
    /// case).
    pub fn user_of_header(&self, value: &str) -> Option<User> {
        let (scheme, token) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.user_of_token(token.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_round_trips_through_its_text_and_hides_in_debug() {
        let h = TokenHash::of("secret");
        assert_eq!(TokenHash::from_text(&h.to_text()), Some(h.clone()));
        assert!(!format!("{h:?}").contains(&h.to_text()[7..15]));
        assert_eq!(TokenHash::from_text("sha256:zz"), None);
        assert_eq!(TokenHash::from_text("md5:00"), None);
    }

    #[test]
    fn the_right_token_names_its_user_and_others_none() {
        let a = Authenticator::single("tok-a");
        assert_eq!(
            a.user_of_header("Bearer tok-a").map(|u| u.name),
            Some(TOKEN_USER.into())
        );
        assert_eq!(
            a.user_of_header("bearer  tok-a").map(|u| u.rights),
            Some(Rights::Exec)
        );
        assert_eq!(a.user_of_header("Bearer tok-b"), None);
        assert_eq!(a.user_of_header("Basic tok-a"), None);
        assert_eq!(a.user_of_header("tok-a"), None);
    }

    #[test]
    fn new_tokens_are_long_and_distinct() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.len() >= 4 + 43, "{a}");
    }
}
