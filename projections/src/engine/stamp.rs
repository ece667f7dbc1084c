//! A process-wide count of changes to what the read models answer.
//!
//! Every commit that changes a projection tree's data (not only its
//! checkpoint) and every swap of a served tree moves it, **after** the
//! change is visible to queries (and after [`Projection::committed`]
//! (super::Projection::committed) has updated what it keeps beside the
//! tree) and **before** the runner publishes its new position. So:
//!
//! - an answer computed while [`data_version`] read the same before and
//!   after stays right for as long as it still reads that value;
//! - a query that waited for a position (`wait_for`, `atLeast`) sees the
//!   value of every change up to that position.
//!
//! One counter for the whole process: read models of another set (tests
//! run several) move it too, which only costs a kept answer, never a stale
//! one.

use std::sync::atomic::{AtomicU64, Ordering};

static DATA_VERSION: AtomicU64 = AtomicU64::new(0);

/// The current count (see the module docs).
pub fn data_version() -> u64 {
    DATA_VERSION.load(Ordering::SeqCst)
}

/// Records that some read model's answers may have changed.
pub(crate) fn data_changed() {
    DATA_VERSION.fetch_add(1, Ordering::SeqCst);
}
