//! Rate limits: a token bucket per principal and per client address.
//!
//! Each key (a principal's token id, or a client address) has a bucket of
//! `burst` tokens refilled at `per_second`; a request takes one token, and a
//! request meeting an empty bucket is refused with `RATE_LIMITED` (HTTP 429)
//! and a `Retry-After` saying when the next token is there. Nothing is
//! written for a refused request.
//!
//! What is limited (see [`crate::state::Limits`]):
//! - every GraphQL request of a principal, by its token id;
//! - GraphQL requests without a valid token, and WebSocket upgrades, by the
//!   client's address (the peer address of the TCP connection; an IPv6
//!   address counts by its /64, which one host usually holds whole).
//!   srs does not trust `X-Forwarded-For`: behind a proxy every client
//!   shares the proxy's bucket, so raise the rate there.
//!
//! The buckets live in memory, bounded: a map at [`MAX_KEYS`] first drops
//! the buckets that have refilled (they equal a fresh one), and is emptied
//! if that frees nothing, so a flood of new addresses costs a fresh burst
//! each, never unbounded memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// The most keys one limiter tracks.
pub const MAX_KEYS: usize = 65_536;

/// A sustained rate and the burst above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests that may come at once after a quiet period.
    pub burst: f64,
}

impl Rate {
    /// `per_second` sustained, `burst` at once (at least one).
    pub fn new(per_second: f64, burst: f64) -> Self {
        Rate {
            per_second: per_second.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Option<Rate>,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter at `rate` (`None`: everything passes).
    pub fn new(rate: Option<Rate>) -> Self {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until there is one.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if !buckets.contains_key(key) && buckets.len() >= MAX_KEYS {
            buckets.retain(|_, bucket| refilled(bucket, rate, now) < rate.burst);
            if buckets.len() >= MAX_KEYS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        bucket.tokens = refilled(bucket, rate, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / rate.per_second,
            ))
        }
    }

    /// How many keys are tracked (for tests).
    pub fn len(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn refilled(bucket: &Bucket, rate: Rate, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(rate.burst)
}

/// The key of a client address: the address itself for IPv4, its /64 for
/// IPv6 (an IPv4-mapped IPv6 address counts as the IPv4 one).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// The rate limits of one server.
#[derive(Debug)]
pub struct Throttle {
    /// By principal (token id).
    pub principals: Limiter<Uuid>,
    /// By client address ([`ip_key`]); requests whose address is unknown
    /// (the app driven without a socket) share one bucket.
    pub addresses: Limiter<Option<IpAddr>>,
}

impl Throttle {
    pub fn new(limits: &crate::state::Limits) -> Self {
        Throttle {
            principals: Limiter::new(limits.rate_principal),
            addresses: Limiter::new(limits.rate_anonymous_ip),
        }
    }

    /// Takes a token for a request of the principal `token_id`.
    pub fn principal(&self, token_id: Uuid) -> Result<(), Duration> {
        self.principals.take(&token_id)
    }

    /// Takes a token for an unauthenticated request from `ip`.
    pub fn address(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.addresses.take(&ip.map(ip_key))
    }
}

/// `Retry-After` in whole seconds (at least 1) for a wait of `wait`.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = Limiter::new(Some(Rate::new(2.0, 3.0)));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take_at(&1, start).is_ok());
        }
        let wait = limiter.take_at(&1, start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Another key has its own bucket.
        assert!(limiter.take_at(&2, start).is_ok());
        // Half a second later, one more token.
        let later = start + Duration::from_millis(500);
        assert!(limiter.take_at(&1, later).is_ok());
        assert!(limiter.take_at(&1, later).is_err());
        // Refills never exceed the burst.
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.take_at(&1, much_later).is_ok());
        }
        assert!(limiter.take_at(&1, much_later).is_err());
    }

    #[test]
    fn no_rate_means_no_limit() {
        let limiter = Limiter::new(None);
        for _ in 0..10_000 {
            assert!(limiter.take(&1).is_ok());
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn the_map_stays_bounded() {
        let limiter = Limiter::new(Some(Rate::new(1.0, 5.0)));
        let now = Instant::now();
        for key in 0..(MAX_KEYS as u64 + 10) {
            let _ = limiter.take_at(&key, now);
        }
        assert!(limiter.len() <= MAX_KEYS);
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
    }
}
