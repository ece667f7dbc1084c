//! Time as the log and the model see it.
//!
//! A [`Timestamp`] is microseconds since the Unix epoch, UTC. It is what is
//! stored (8 bytes, cheap to compare and to encode) and it converts to and
//! from RFC 3339 at the edges. The [`Clock`] is injected everywhere time is
//! read, so tests can run a year of schedule in milliseconds.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Microseconds since 1970-01-01T00:00:00Z.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);
    pub const MICROS_PER_SEC: i64 = 1_000_000;
    pub const MICROS_PER_DAY: i64 = 86_400 * Self::MICROS_PER_SEC;

    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(Self::MICROS_PER_SEC))
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(Self::MICROS_PER_SEC)
    }

    /// The wall clock, now.
    pub fn now() -> Self {
        Utc::now().into()
    }

    pub fn plus_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    pub fn plus_secs(self, secs: i64) -> Self {
        self.plus_micros(secs.saturating_mul(Self::MICROS_PER_SEC))
    }

    pub fn plus_days(self, days: i64) -> Self {
        self.plus_micros(days.saturating_mul(Self::MICROS_PER_DAY))
    }

    /// Whole days since the epoch (the UTC calendar day this instant falls in).
    pub fn day_number(self) -> i64 {
        self.0.div_euclid(Self::MICROS_PER_DAY)
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Parses an RFC 3339 timestamp with any offset.
    pub fn parse_rfc3339(text: &str) -> Result<Self, chrono::ParseError> {
        Ok(DateTime::parse_from_rfc3339(text)?
            .with_timezone(&Utc)
            .into())
    }

    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        Timestamp(value.timestamp_micros())
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(value: Timestamp) -> Self {
        value.to_datetime()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system's UTC wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; shared between clones.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    pub fn set(&self, to: Timestamp) {
        self.0.store(to.0, Ordering::SeqCst);
    }

    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(
            secs.saturating_mul(Timestamp::MICROS_PER_SEC),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_to_the_microsecond() {
        let t = Timestamp::parse_rfc3339("2026-11-24T16:15:55.123456Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T16:15:55.123456Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-24T18:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T16:00:00.000000Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_secs(100));
        assert_eq!(clock.now(), Timestamp::from_secs(100));
        clock.advance_secs(86_400);
        assert_eq!(clock.now().day_number(), 1);
    }
}
