//! Retry pacing for fetches from the provider.

use std::time::Duration;

use tokio::time::Instant;

/// Exponential backoff: after `n` consecutive failures the next attempt waits
/// `min(base * 2^(n-1), max)`.
#[derive(Debug)]
pub(crate) struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Self {
            failures: 0,
            next_attempt: None,
            base,
            max,
        }
    }

    /// `Err(wait)` while the next attempt is not due.
    pub(crate) fn check(&self, now: Instant) -> Result<(), Duration> {
        match self.next_attempt {
            Some(at) if at > now => Err(at - now),
            _ => Ok(()),
        }
    }

    pub(crate) fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(16);
        let wait = self.base.saturating_mul(1 << exp).min(self.max);
        self.next_attempt = Some(now + wait);
    }

    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_and_resets() {
        let now = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        assert!(b.check(now).is_ok());
        b.failed(now);
        assert_eq!(b.check(now), Err(Duration::from_secs(1)));
        b.failed(now);
        assert_eq!(b.check(now), Err(Duration::from_secs(2)));
        for _ in 0..10 {
            b.failed(now);
        }
        assert_eq!(b.check(now), Err(Duration::from_secs(5)));
        assert!(b.check(now + Duration::from_secs(5)).is_ok());
        b.succeeded();
        assert!(b.check(now).is_ok());
    }
}
