//! Login throttling: after `max_failures` consecutive failed password checks the credential is locked
//! for `lock_for`. Pure policy over the `user_credentials.failed_attempts` / `locked_until` columns; the
//! caller reads them, asks this, and writes the answer back (in the same transaction as the check).
//!
//! Protocol for a login: if [`LoginThrottle::is_locked`], refuse without checking the password (and
//! without counting the attempt, so a lock cannot be extended by hammering it); else verify, and store
//! [`LoginThrottle::on_failure`] or [`LoginThrottle::on_success`].

use chrono::{DateTime, Duration, Utc};

/// The throttling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Consecutive failures that trigger a lock (at least 1).
    pub max_failures: u32,
    /// How long a lock lasts.
    pub lock_for: Duration,
}

impl Default for LoginThrottle {
    /// 5 failures → locked for 15 minutes.
    fn default() -> Self {
        Self { max_failures: 5, lock_for: Duration::minutes(15) }
    }
}

impl LoginThrottle {
    /// The new `(failed_attempts, locked_until)` after a failed attempt at `now`, given the stored count
    /// (negative counts are treated as 0). When the count reaches `max_failures` the credential is
    /// locked until `now + lock_for` and the count restarts at 0, so after the lock the user has a
    /// fresh window of `max_failures` attempts. Otherwise `locked_until` is `None` (unlocked).
    pub fn on_failure(&self, failed_attempts: i32, now: DateTime<Utc>) -> (i32, Option<DateTime<Utc>>) {
        let count = failed_attempts.max(0).saturating_add(1);
        let max = i32::try_from(self.max_failures.max(1)).unwrap_or(i32::MAX);
        if count >= max { (0, Some(now + self.lock_for)) } else { (count, None) }
    }

    /// The new `(failed_attempts, locked_until)` after a successful login: counter and lock cleared.
    pub fn on_success(&self) -> (i32, Option<DateTime<Utc>>) {
        (0, None)
    }

    /// Whether a credential with this `locked_until` is locked at `now` (the lock ends at `locked_until`).
    pub fn is_locked(locked_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        locked_until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn five_failures_lock_for_fifteen_minutes() {
        let policy = LoginThrottle::default();
        let now = t0();
        let mut count = 0;
        for expected in 1..=4 {
            let (next, locked) = policy.on_failure(count, now);
            assert_eq!((next, locked), (expected, None));
            count = next;
        }
        let (next, locked) = policy.on_failure(count, now);
        assert_eq!(next, 0);
        assert_eq!(locked, Some(now + Duration::minutes(15)));
    }

    #[test]
    fn lock_window() {
        let now = t0();
        let until = now + Duration::minutes(15);
        assert!(!LoginThrottle::is_locked(None, now));
        assert!(LoginThrottle::is_locked(Some(until), now));
        assert!(LoginThrottle::is_locked(Some(until), until - Duration::seconds(1)));
        assert!(!LoginThrottle::is_locked(Some(until), until), "the lock ends at locked_until");
        assert!(!LoginThrottle::is_locked(Some(now - Duration::seconds(1)), now), "stale locks are ignored");
    }

    #[test]
    fn success_clears_and_odd_inputs_are_safe() {
        let policy = LoginThrottle::default();
        assert_eq!(policy.on_success(), (0, None));
        assert_eq!(policy.on_failure(-3, t0()), (1, None));
        assert_eq!(policy.on_failure(40, t0()).0, 0, "a count past the limit locks");
        assert!(policy.on_failure(i32::MAX, t0()).1.is_some());
        let strict = LoginThrottle { max_failures: 0, lock_for: Duration::minutes(1) };
        assert!(strict.on_failure(0, t0()).1.is_some(), "max_failures 0 behaves as 1");
        let huge = LoginThrottle { max_failures: u32::MAX, lock_for: Duration::minutes(1) };
        assert_eq!(huge.on_failure(0, t0()), (1, None));
    }
}
