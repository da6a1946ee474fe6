//! No enumeration of card numbers: a lookup by card serial must carry the
//! holder's date of birth; a wrong date is answered exactly like an unknown
//! serial, and no sooner (every miss takes at least [`MissLimiter::floor`]);
//! a client with too many misses in a window is refused (429) until the
//! window ends, hits included.
//!
//! Clients are told apart by their authenticated name (by remote address
//! on a server without authentication). Nothing here is persisted: a
//! restart forgets the counts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Misses allowed per client and window, by default.
pub const DEFAULT_MISSES: u32 = 20;
/// The window, by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The least time a miss takes to answer, by default: far above what any
/// lookup costs, so a hit-then-mismatch and a plain unknown serial take the
/// same time.
pub const DEFAULT_FLOOR: Duration = Duration::from_millis(5);

/// Counts misses per client in fixed windows.
#[derive(Debug)]
pub struct MissLimiter {
    limit: u32,
    window: Duration,
    floor: Duration,
    clients: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Default for MissLimiter {
    fn default() -> MissLimiter {
        MissLimiter::new(DEFAULT_MISSES, DEFAULT_WINDOW, DEFAULT_FLOOR)
    }
}

impl MissLimiter {
    pub fn new(limit: u32, window: Duration, floor: Duration) -> MissLimiter {
        MissLimiter {
            limit,
            window,
            floor,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The least time a miss takes.
    pub fn floor(&self) -> Duration {
        self.floor
    }

    /// `Err(seconds)` if `client` used up its misses in the current window.
    pub fn check(&self, client: &str) -> Result<(), u64> {
        let now = Instant::now();
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match clients.get(client) {
            Some((start, misses)) if *misses >= self.limit && now < *start + self.window => {
                Err((*start + self.window - now).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a miss of `client`.
    pub fn miss(&self, client: &str) {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        // Forget finished windows now and then, so the map stays small.
        if clients.len() > 10_000 {
            clients.retain(|_, (start, _)| now < *start + self.window);
        }
        let entry = clients.entry(client.to_owned()).or_insert((now, 0));
        if now >= entry.0 + self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_refused_after_its_misses_and_others_are_not() {
        let limiter = MissLimiter::new(3, Duration::from_secs(60), Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(limiter.check("a"), Ok(()));
            limiter.miss("a");
        }
        let retry = limiter.check("a").unwrap_err();
        assert!((1..=60).contains(&retry));
        assert_eq!(limiter.check("b"), Ok(()));
    }

    #[test]
    fn the_window_ends() {
        let limiter = MissLimiter::new(1, Duration::from_millis(30), Duration::ZERO);
        limiter.miss("a");
        assert!(limiter.check("a").is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(limiter.check("a"), Ok(()));
    }
}
