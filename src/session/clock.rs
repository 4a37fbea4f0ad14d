//! The one clock of session activity: Unix seconds (what records store and clients read)
//! that advance with tokio's clock (so idle cleanup can be tested under paused time).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, read from the system clock.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A monotonic clock in Unix seconds: the system time when it was made, plus tokio's
/// elapsed time since. Monotonic, so idle times never run backwards.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor_unix: f64,
    anchor: tokio::time::Instant,
}

impl Clock {
    /// A clock anchored now.
    pub fn new() -> Self {
        Clock {
            anchor_unix: unix_now(),
            anchor: tokio::time::Instant::now(),
        }
    }

    /// Now, in Unix seconds.
    pub fn now(&self) -> f64 {
        self.anchor_unix + self.anchor.elapsed().as_secs_f64()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
