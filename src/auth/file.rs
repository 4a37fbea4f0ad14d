//! The auth file: users, the SHA-256 of their token, and their rights, as JSON. Written
//! atomically (a temporary file in the same directory, then renamed) and created readable by
//! its owner only (0600 on Unix; on Windows the file lives in the user's own profile, whose
//! ACL already keeps other users out).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Rights, TokenHash, new_token};

/// The file format version this build writes and reads.
pub const FILE_VERSION: u32 = 1;

/// Failures reading or writing the auth file, or making a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read.
    #[error("the auth file {path} could not be read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("the auth file {path} could not be written: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an auth file this build reads.
    #[error("the auth file {path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A user name that cannot be used.
    #[error("{0:?} is not a valid user name: use 1-64 letters, digits, '-', '_', '.' or '@'")]
    BadUser(String),
    /// The OS gave no randomness.
    #[error("no random bytes for a token: {0}")]
    Random(String),
    /// No configuration directory is known on this machine.
    #[error("no configuration directory is known here: pass --auth-file FILE")]
    NoConfigDir,
}

/// One user of the auth file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserEntry {
    /// The user name.
    pub user: String,
    /// `sha256:` and the hex SHA-256 of its token.
    pub token_sha256: String,
    /// What it may do.
    #[serde(default)]
    pub rights: Rights,
    /// When its token was made (RFC 3339).
    #[serde(default)]
    pub created_at: String,
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthFile {
    /// Format version.
    pub version: u32,
    /// The users, one token each.
    pub users: Vec<UserEntry>,
}

impl Default for AuthFile {
    fn default() -> Self {
        AuthFile {
            version: FILE_VERSION,
            users: Vec::new(),
        }
    }
}

/// The auth file used when no `--auth-file` is given: `auth.json` in this program's
/// configuration directory (`~/.config/blender-session-mcp/` on Linux,
/// `%APPDATA%\blender-session-mcp\config\` on Windows).
pub fn default_path() -> Result<PathBuf, AuthError> {
    let dirs = directories::ProjectDirs::from("", "", "blender-session-mcp")
        .ok_or(AuthError::NoConfigDir)?;
    Ok(dirs.config_dir().join("auth.json"))
}

/// Whether `name` can be a user: 1–64 of letters, digits, `-`, `_`, `.`, `@`, and not the
/// reserved `*` (every user) or `local` (stdio).
pub fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != super::LOCAL_USER
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

impl AuthFile {
    /// Read `path`.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.into(),
            source,
        })?;
        let file: AuthFile = serde_json::from_str(&text).map_err(|e| AuthError::Invalid {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if file.version != FILE_VERSION {
            return Err(AuthError::Invalid {
                path: path.into(),
                reason: format!(
                    "version {} (this build reads version {FILE_VERSION})",
                    file.version
                ),
            });
        }
        if let Some(bad) = file
            .users
            .iter()
            .find(|u| TokenHash::from_text(&u.token_sha256).is_none())
        {
            return Err(AuthError::Invalid {
                path: path.into(),
                reason: format!("user {:?} has no valid token_sha256", bad.user),
            });
        }
        Ok(file)
    }

    /// Read `path`, or an empty file when it does not exist.
    pub fn load_or_default(path: &Path) -> Result<Self, AuthError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
            _ => Self::load(path),
        }
    }

    /// Write to `path` atomically, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let write = |source| AuthError::Write {
            path: path.into(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(write)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| write(e.into()))?;
        // tempfile creates the file 0600 on Unix; the rename keeps that mode.
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(write)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(write)?;
        tmp.as_file().sync_all().map_err(write)?;
        tmp.persist(path).map_err(|e| write(e.error))?;
        Ok(())
    }

    /// Give `user` a new token with `rights` (replacing any token it had); returns the token,
    /// which is stored nowhere.
    pub fn add(&mut self, user: &str, rights: Rights) -> Result<String, AuthError> {
        if !valid_user(user) {
            return Err(AuthError::BadUser(user.into()));
        }
        let token = new_token()?;
        self.users.retain(|u| u.user != user);
        self.users.push(UserEntry {
            user: user.into(),
            token_sha256: TokenHash::of(&token).to_text(),
            rights,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        self.users.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(token)
    }

    /// Remove `user`; whether it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|u| u.user != user);
        self.users.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticator;

    #[test]
    fn add_save_load_remove_and_the_token_works_only_until_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth.json");
        let mut f = AuthFile::load_or_default(&path).unwrap();
        let first = f.add("alice", Rights::Exec).unwrap();
        f.add("bob", Rights::Read).unwrap();
        f.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&first), "the token itself is never stored");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut loaded = AuthFile::load(&path).unwrap();
        let auth = Authenticator::from_file(&loaded);
        assert_eq!(
            auth.user_of_token(&first).map(|u| u.name),
            Some("alice".into())
        );
        let second = loaded.add("alice", Rights::Read).unwrap();
        let auth = Authenticator::from_file(&loaded);
        assert_eq!(auth.user_of_token(&first), None);
        assert_eq!(
            auth.user_of_token(&second).map(|u| u.rights),
            Some(Rights::Read)
        );
        assert!(loaded.remove("bob"));
        assert!(!loaded.remove("bob"));
        assert_eq!(loaded.users.len(), 1);
    }

    #[test]
    fn bad_names_and_bad_files_are_refused() {
        let mut f = AuthFile::default();
        for bad in ["", "*", "local", "a b", "x/y", &"a".repeat(65)] {
            assert!(
                matches!(f.add(bad, Rights::Exec), Err(AuthError::BadUser(_))),
                "{bad}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        std::fs::write(&path, "{\"version\": 9, \"users\": []}").unwrap();
        assert!(matches!(
            AuthFile::load(&path),
            Err(AuthError::Invalid { .. })
        ));
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(
            AuthFile::load(&path),
            Err(AuthError::Invalid { .. })
        ));
        assert!(matches!(
            AuthFile::load(&dir.path().join("missing.json")),
            Err(AuthError::Read { .. })
        ));
    }
}
