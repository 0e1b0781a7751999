//! Rate limits on the endpoints that could be used to guess secrets: voucher lookups and
//! redemptions, and residents' link and PIN sign-ins. Each is limited per token (or household)
//! and per client address; over the limit is 429 with Retry-After.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

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
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            voucher_per_token: 120,
            voucher_per_address: 240,
            resident_per_household: 10,
            resident_per_address: 30,
        }
    }
}

fn limiter<K: Hash + Eq + Clone>(per_minute: u32) -> DefaultKeyedRateLimiter<K> {
    let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::keyed(Quota::per_minute(n))
}

pub struct Limits {
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

    /// Drops idle keys so the maps stay bounded.
    pub fn prune(&self) {
        self.voucher_token.retain_recent();
        self.voucher_address.retain_recent();
        self.resident_household.retain_recent();
        self.resident_address.retain_recent();
    }
}
