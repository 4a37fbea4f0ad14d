//! Short-lived, single-use tickets for the event stream: a browser cannot put an
//! `Authorization` header on a WebSocket (nor on an `EventSource`), so the dashboard trades
//! its bearer token for a ticket (`POST /api/ticket`, authenticated) and opens
//! `/ws?ticket=…`. The token itself never appears in a URL; a ticket is worthless after one
//! use or [`TICKET_TTL`], and is never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::{AuthError, User, new_token};

/// How long a ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Most tickets outstanding at once (older ones are dropped first).
const MAX_TICKETS: usize = 10_000;

/// The outstanding tickets of one server.
#[derive(Debug, Clone, Default)]
pub struct Tickets {
    issued: Arc<Mutex<HashMap<String, (User, Instant)>>>,
}

impl Tickets {
    fn issued(&self) -> std::sync::MutexGuard<'_, HashMap<String, (User, Instant)>> {
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new ticket for `user`.
    pub fn issue(&self, user: User) -> Result<String, AuthError> {
        let ticket = new_token()?.replacen("bsm_", "bsmt_", 1);
        let mut issued = self.issued();
        let now = Instant::now();
        issued.retain(|_, (_, at)| now.duration_since(*at) < TICKET_TTL);
        if issued.len() >= MAX_TICKETS
            && let Some(oldest) = issued
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            issued.remove(&oldest);
        }
        issued.insert(ticket.clone(), (user, now));
        Ok(ticket)
    }

    /// The user of `ticket`, once: the ticket is gone afterwards.
    pub fn redeem(&self, ticket: &str) -> Option<User> {
        let (user, at) = self.issued().remove(ticket)?;
        (at.elapsed() < TICKET_TTL).then_some(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once() {
        let t = Tickets::default();
        let ticket = t.issue(User::local()).expect("a ticket");
        assert!(ticket.starts_with("bsmt_"));
        assert_eq!(t.redeem(&ticket), Some(User::local()));
        assert_eq!(t.redeem(&ticket), None);
        assert_eq!(t.redeem("bsmt_made_up"), None);
    }
}
