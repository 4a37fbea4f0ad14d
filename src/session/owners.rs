//! Sessions and their users: opening a user's default, named or new session (names are per
//! owner), the per-user cap, and who may use a session — its owner, and those it is shared
//! with (`read`: the read-only tools; `write`: everything but closing and sharing, which
//! stay the owner's). Another user's session reads exactly like an unknown one.

use std::sync::Arc;

use crate::backend::Target;
use crate::store::{Access, Created, LOCAL_OWNER, NewSession};

use super::error::SessionError;
use super::record::new_session_id;
use super::registry::Registry;

impl Registry {
    /// Create a session of `owner` for `target` (the default target when `None`) and, when
    /// the registry connects on create, connect it.
    ///
    /// The session exists even if Blender is unreachable: its info then says
    /// `connected: false` with the reason, and its next command tries again.
    pub async fn create_session_for(
        &self,
        owner: &str,
        target: Option<Target>,
    ) -> Result<String, SessionError> {
        let id = self.open(target, None, owner).await?;
        if self.config().connect_on_create {
            self.connect_session(&id).await;
        }
        Ok(id)
    }

    /// [`Registry::create_session_for`] the `local` user.
    pub async fn create_session(&self, target: Option<Target>) -> Result<String, SessionError> {
        self.create_session_for(LOCAL_OWNER, target).await
    }

    /// Create a session of the `local` user without connecting it (its first command
    /// connects).
    pub async fn open_session(&self, target: Option<Target>) -> Result<String, SessionError> {
        self.open(target, None, LOCAL_OWNER).await
    }

    /// The open session of `owner` named `name`, created (for `target`, or the default
    /// target) when there is none: every process on the store gets the same one. Never
    /// connects. Names are per owner: two users' sessions named "main" are two sessions.
    pub async fn open_named_for(
        &self,
        owner: &str,
        name: &str,
        target: Option<Target>,
    ) -> Result<String, SessionError> {
        self.open(target, Some(name.to_owned()), owner).await
    }

    /// [`Registry::open_named_for`] the `local` user.
    pub async fn open_named(
        &self,
        name: &str,
        target: Option<Target>,
    ) -> Result<String, SessionError> {
        self.open_named_for(LOCAL_OWNER, name, target).await
    }

    /// The session a client of `owner` uses when it names none: the `--session` one when
    /// configured, else a new one. Never connects.
    pub async fn open_default_for(&self, owner: &str) -> Result<String, SessionError> {
        match self.config().session_name.clone() {
            Some(name) => self.open(None, Some(name), owner).await,
            None => self.open(None, None, owner).await,
        }
    }

    /// [`Registry::open_default_for`] the `local` user.
    pub async fn open_default(&self) -> Result<String, SessionError> {
        self.open_default_for(LOCAL_OWNER).await
    }

    async fn open(
        &self,
        target: Option<Target>,
        name: Option<String>,
        owner: &str,
    ) -> Result<String, SessionError> {
        let target = target.unwrap_or_else(|| self.config().default_target.clone());
        if self.shutdown_token().is_cancelled() {
            return Err(SessionError::ShuttingDown);
        }
        if let Some(name) = &name
            && let Some(live) = self.live_named(owner, name)
        {
            return Ok(live.to_string());
        }
        if self.live().len() >= self.config().max_sessions {
            return Err(SessionError::TooManySessions {
                limit: self.config().max_sessions,
            });
        }
        self.check_user_limit(owner, name.as_deref()).await?;
        let new = NewSession {
            id: new_session_id(),
            name,
            owner: owner.into(),
            target,
            now: self.records().clock().now(),
        };
        let (stored, created) = match self.store().create(new).await? {
            Created::New(s) => (s, true),
            Created::Existing(s) => (s, false),
        };
        let id = stored.id.clone();
        self.adopt(&stored, created);
        if created {
            tracing::info!("✓ Session created: {id}");
        }
        Ok(id)
    }

    /// The id of a live session of `owner` named `name`.
    fn live_named(&self, owner: &str, name: &str) -> Option<Arc<str>> {
        self.live()
            .values()
            .find(|l| l.name.as_deref() == Some(name) && l.owner == owner)
            .map(|l| l.id.clone())
    }

    /// The owner of session `id` when it is live in this process.
    pub fn owner_of_live(&self, id: &str) -> Option<String> {
        self.live().get(id).map(|l| l.owner.clone())
    }

    /// Refuse a new session of `owner` past `max_sessions_per_user` (reusing a named one is
    /// not new). The `local` user (stdio, this machine's own) is bounded by `max_sessions`
    /// only.
    async fn check_user_limit(&self, owner: &str, name: Option<&str>) -> Result<(), SessionError> {
        let Some(limit) = self.config().max_sessions_per_user else {
            return Ok(());
        };
        if owner == LOCAL_OWNER {
            return Ok(());
        }
        if let Some(name) = name
            && self.store().get_by_name(owner, name).await?.is_some()
        {
            return Ok(());
        }
        let owned = self.store().count_owned(owner).await?;
        if owned >= limit as u64 {
            return Err(SessionError::TooManyForUser {
                user: owner.into(),
                limit,
            });
        }
        Ok(())
    }

    /// What `user` may do with session `id`: `Ok(Write)` for its owner, the share's access
    /// for a user it is shared with. A session `user` may not see is
    /// [`SessionError::NotFound`], exactly as an unknown id.
    pub async fn access(&self, id: &str, user: &str) -> Result<Access, SessionError> {
        let live = self.live().get(id).cloned();
        if live.is_some_and(|l| l.owner == user) {
            return Ok(Access::Write);
        }
        match self.store().get(id).await? {
            Some(s) => s.access_of(user).ok_or_else(|| SessionError::not_found(id)),
            None => Err(SessionError::not_found(id)),
        }
    }

    /// Check that `user` may use session `id` as `need` asks: a read share asking to write
    /// is [`SessionError::ReadOnly`].
    pub async fn authorize(&self, id: &str, user: &str, need: Access) -> Result<(), SessionError> {
        match (self.access(id, user).await?, need) {
            (Access::Read, Access::Write) => Err(SessionError::ReadOnly(id.into())),
            _ => Ok(()),
        }
    }

    /// Check that `user` owns session `id` (closing and sharing are the owner's).
    pub async fn authorize_owner(&self, id: &str, user: &str) -> Result<(), SessionError> {
        let live = self.live().get(id).cloned();
        if let Some(live) = live {
            return if live.owner == user {
                Ok(())
            } else if self.access(id, user).await.is_ok() {
                Err(SessionError::NotOwner(id.into()))
            } else {
                Err(SessionError::not_found(id))
            };
        }
        match self.store().get(id).await? {
            Some(s) if s.owner == user => Ok(()),
            Some(s) if s.access_of(user).is_some() => Err(SessionError::NotOwner(id.into())),
            _ => Err(SessionError::not_found(id)),
        }
    }

    /// Share session `id`, which `owner` owns, with `user` (`*`: every user) at `access`, or
    /// stop sharing it (`None`).
    pub async fn share(
        &self,
        id: &str,
        owner: &str,
        user: &str,
        access: Option<Access>,
    ) -> Result<(), SessionError> {
        self.authorize_owner(id, owner).await?;
        if self.store().share(id, user, access).await? {
            Ok(())
        } else {
            Err(SessionError::Closed(id.into()))
        }
    }
}
