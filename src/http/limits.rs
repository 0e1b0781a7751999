//! Rate limits on the endpoints that could be used to guess secrets: voucher lookups and
//! redemptions, and residents' link and PIN sign-ins. Each is limited per token (or household)
//! and per client address; over the limit is 429 with Retry-After.
//!
//! Failed authentication of any kind (a bearer token or session cookie that is not live, a
//! pairing code, a staff token, a resident's link or PIN) is counted per client address and, where
//! the attempt names one, per target (the household): past the allowance the caller gets 429
//! with Retry-After until the window ends, whatever it sends.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;

/// Attempts allowed per minute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateConfig {
    pub voucher_per_token: u32,
    pub voucher_per_address: u32,
    pub resident_per_household: u32,
    pub resident_per_address: u32,
    /// Failed authentications allowed per client address per minute.
    pub failed_auth_per_address: u32,
    /// Failed authentications allowed per target (household) per minute.
    pub failed_auth_per_target: u32,
    /// Residents' own reads (balances, history, fees) per household per minute.
    pub resident_reads_per_household: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            voucher_per_token: 120,
            voucher_per_address: 240,
            resident_per_household: 10,
            resident_per_address: 30,
            failed_auth_per_address: 30,
            failed_auth_per_target: 10,
            resident_reads_per_household: 60,
        }
    }
}

fn limiter<K: Hash + Eq + Clone>(per_minute: u32) -> DefaultKeyedRateLimiter<K> {
    let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::keyed(Quota::per_minute(n))
}

/// How long a window of failed authentications lasts.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Keys kept at most per failure table: past it, the oldest windows are dropped first.
const FAILURE_KEYS: usize = 100_000;

/// Failures counted per key in fixed one-minute windows. Unlike a token bucket it can be asked
/// whether a key is blocked without spending anything, so a blocked caller is refused before
/// its guess is even checked.
struct FailureTable<K> {
    allowed: u32,
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Hash + Eq + Clone> FailureTable<K> {
    fn new(allowed: u32) -> Self {
        FailureTable {
            allowed: allowed.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until the key may try again, when it is blocked.
    fn blocked(&self, key: &K, now: Instant) -> Option<u64> {
        let windows = self.windows.lock().ok()?;
        let (start, count) = windows.get(key)?;
        let end = *start + FAILURE_WINDOW;
        (*count >= self.allowed && end > now).then(|| (end - now).as_secs() + 1)
    }

    fn record(&self, key: &K, now: Instant) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if windows.len() >= FAILURE_KEYS && !windows.contains_key(key) {
            windows.retain(|_, (start, _)| *start + FAILURE_WINDOW > now);
            if windows.len() >= FAILURE_KEYS {
                // Still full of live windows: forget one, so the table stays bounded.
                if let Some(old) = windows.keys().next().cloned() {
                    windows.remove(&old);
                }
            }
        }
        let entry = windows.entry(key.clone()).or_insert((now, 0));
        if entry.0 + FAILURE_WINDOW <= now {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    fn prune(&self, now: Instant) {
        if let Ok(mut windows) = self.windows.lock() {
            windows.retain(|_, (start, _)| *start + FAILURE_WINDOW > now);
        }
    }
}

pub struct Limits {
    failed_address: FailureTable<IpAddr>,
    failed_target: FailureTable<String>,
    resident_reads: DefaultKeyedRateLimiter<String>,
    voucher_token: DefaultKeyedRateLimiter<i64>,
    voucher_address: DefaultKeyedRateLimiter<IpAddr>,
    resident_household: DefaultKeyedRateLimiter<String>,
    resident_address: DefaultKeyedRateLimiter<IpAddr>,
}

fn check<K: Hash + Eq + Clone>(l: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), ApiError> {
    l.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::too_many(wait.as_secs() + 1)
    })
}

impl Limits {
    pub fn new(c: &RateConfig) -> Limits {
        Limits {
            failed_address: FailureTable::new(c.failed_auth_per_address),
            failed_target: FailureTable::new(c.failed_auth_per_target),
            resident_reads: limiter(c.resident_reads_per_household),
            voucher_token: limiter(c.voucher_per_token),
            voucher_address: limiter(c.voucher_per_address),
            resident_household: limiter(c.resident_per_household),
            resident_address: limiter(c.resident_per_address),
        }
    }

    pub fn voucher(&self, token: i64, address: IpAddr) -> Result<(), ApiError> {
        check(&self.voucher_token, &token)?;
        check(&self.voucher_address, &address)
    }

    pub fn resident(&self, household: &str, address: IpAddr) -> Result<(), ApiError> {
        check(&self.resident_address, &address)?;
        check(&self.resident_household, &household.to_string())
    }

    /// Web sign-ins with a staff token or a till pairing code: per client address.
    pub fn sign_in(&self, address: IpAddr) -> Result<(), ApiError> {
        check(&self.resident_address, &address)
    }

    /// 429 when this address, or this target, has failed to authenticate too often lately.
    pub fn auth_allowed(&self, address: IpAddr, target: Option<&str>) -> Result<(), ApiError> {
        let now = Instant::now();
        let wait = self
            .failed_address
            .blocked(&address, now)
            .or_else(|| target.and_then(|t| self.failed_target.blocked(&t.to_string(), now)));
        match wait {
            Some(secs) => Err(ApiError::too_many(secs)),
            None => Ok(()),
        }
    }

    /// Counts a failed authentication against the address and the target.
    pub fn auth_failed(&self, address: IpAddr, target: Option<&str>) {
        let now = Instant::now();
        self.failed_address.record(&address, now);
        if let Some(t) = target {
            self.failed_target.record(&t.to_string(), now);
        }
    }

    /// A resident's read of their own household's figures.
    pub fn resident_read(&self, household: &str) -> Result<(), ApiError> {
        check(&self.resident_reads, &household.to_string())
    }

    /// Drops idle keys so the maps stay bounded.
    pub fn prune(&self) {
        let now = Instant::now();
        self.failed_address.prune(now);
        self.failed_target.prune(now);
        self.resident_reads.retain_recent();
        self.voucher_token.retain_recent();
        self.voucher_address.retain_recent();
        self.resident_household.retain_recent();
        self.resident_address.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_past_the_allowance_until_the_window_ends() {
        let t = FailureTable::<u8>::new(3);
        let start = Instant::now();
        for _ in 0..2 {
            t.record(&1, start);
        }
        assert_eq!(t.blocked(&1, start), None);
        t.record(&1, start);
        assert_eq!(t.blocked(&1, start), Some(61));
        assert_eq!(t.blocked(&1, start + Duration::from_secs(30)), Some(31));
        // Another key is not affected, and the window ends.
        assert_eq!(t.blocked(&2, start), None);
        assert_eq!(t.blocked(&1, start + FAILURE_WINDOW), None);
        t.record(&1, start + FAILURE_WINDOW);
        assert_eq!(t.blocked(&1, start + FAILURE_WINDOW), None);
    }
}
