//! srs-bench: the benchmarks behind `srs bench`. Its one job is measuring
//! srs; it is its own binary, `srs-bench`, which `srs bench` runs (so the
//! `srs` binary links none of it, nor PostgreSQL's client).
//!
//! Every figure is printed with the baseline it is compared to, measured in
//! the same run on the same machine, and the ratio, because absolute numbers
//! on a shared 2-core machine say little on their own. Figures are printed as
//! one JSON object per line (`--json`) in the shape of `DESIGN.md`:
//! `{"bench":"log","figure":"append_64_writers","value":..,"unit":"events/s","baseline_name":"sled_batch_flush","baseline":..,"ratio":..}`.
//!
//! # Layout
//!
//! - [`Figure`]: one measured figure and how it prints.
//! - [`log`]: durable append throughput (1, 8, 64 writers) against raw sled
//!   batches, and the full-scan read rate against a raw sled iteration.
//! - [`jetstream`]: the 64-writer durable append on the log kept in a
//!   JetStream stream (`--log-url`) against raw JetStream publishes of
//!   the same size and the embedded log, and through two nodes.
//! - [`pg`]: the same 64-writer durable append on PostgreSQL (`--pg URL`):
//!   single-event INSERT+COMMIT under a unique `(stream, version)`.
//! - [`rebuild`]: every read model rebuilt from a generated history,
//!   against a raw sled iteration of the same log.
//! - [`catalogue`]: filtered recordings pages at scale, against reading
//!   the same number of rows by key.
//! - [`graphql`]: the dashboard query and a filtered recordings page under
//!   32 concurrent connections against a plain axum JSON handler on the
//!   same server (the server itself is started by [`graphql_server`]).
//! - [`graphql_server`]: `srs bench graphql`, the real server ([`srs_api`])
//!   on a generated history, with the plain handler beside it: the read
//!   figures idle and while agents ingest, and the ingest rate.
//! - [`ingest`]: agents sending session events through GraphQL
//!   (`ingest_graphql`) against the log's own 64-writer append.
//! - [`serve_rss`]: the idle RSS of a real `srs serve` process holding the
//!   generated history, against the same on an empty directory.
//! - [`resources`]: peak RSS and bytes on disk.
//! - [`cmd`]: running the benchmark groups and printing their figures.
//! - [`cli`]: the `srs-bench` command line (`srs bench`'s flags).
#![forbid(unsafe_code)]

pub mod catalogue;
pub mod cli;
pub mod cmd;
pub mod graphql;
pub mod graphql_server;
pub mod history;
pub mod ingest;
pub mod jetstream;
pub mod log;
pub mod pg;
pub mod rebuild;
pub mod resources;
pub mod serve_rss;

use std::fmt;

use serde::Serialize;

/// One measured figure.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Figure {
    pub bench: &'static str,
    pub figure: &'static str,
    pub value: f64,
    pub unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl Figure {
    pub fn new(bench: &'static str, figure: &'static str, value: f64, unit: &'static str) -> Self {
        Figure {
            bench,
            figure,
            value,
            unit,
            baseline_name: None,
            baseline: None,
            ratio: None,
        }
    }

    /// Adds the baseline; the ratio is `value / baseline` (higher is better
    /// for rates), rounded to two decimals.
    pub fn against(mut self, name: &'static str, baseline: f64) -> Self {
        self.baseline_name = Some(name);
        self.baseline = Some(round(baseline));
        self.ratio = (baseline > 0.0).then(|| (self.value / baseline * 100.0).round() / 100.0);
        self.value = round(self.value);
        self
    }

    /// Adds a latency baseline; the ratio is `baseline / value`, so that
    /// it reads like the rates' ratio: higher is better, 1.0 is "as fast
    /// as the baseline", 0.5 is "twice the baseline's latency".
    pub fn against_latency(mut self, name: &'static str, baseline: f64) -> Self {
        self.baseline_name = Some(name);
        self.baseline = Some(round_ms(baseline));
        self.ratio = (self.value > 0.0).then(|| (baseline / self.value * 100.0).round() / 100.0);
        self.value = round_ms(self.value);
        self
    }

    /// Adds a size baseline (bytes); as for latencies, the ratio is
    /// `baseline / value`: higher is better, 1.0 is "as small as the
    /// baseline", 0.25 is "four times the baseline's size".
    pub fn against_size(mut self, name: &'static str, baseline: f64) -> Self {
        self.baseline_name = Some(name);
        self.baseline = Some(baseline.round());
        self.ratio = (self.value > 0.0).then(|| (baseline / self.value * 100.0).round() / 100.0);
        self.value = self.value.round();
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The nearest-rank `q` quantile (0 < q <= 1) of latencies in microseconds,
/// sorted ascending, in milliseconds; `None` without samples.
pub fn quantile_ms(sorted_us: &[u64], q: f64) -> Option<f64> {
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len().max(1));
    sorted_us.get(rank - 1).map(|us| *us as f64 / 1_000.0)
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Milliseconds keep three decimals: sub-millisecond latencies matter.
fn round_ms(v: f64) -> f64 {
    (v * 1_000.0).round() / 1_000.0
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {:<28} {:>14.3} {:<10}",
            self.bench, self.figure, self.value, self.unit
        )?;
        if let (Some(name), Some(base), Some(ratio)) =
            (self.baseline_name, self.baseline, self.ratio)
        {
            write!(f, "  vs {name} {base:.3} = {ratio:.2}x")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_prints_in_the_design_line_shape() {
        let f = Figure::new("log", "append_64_writers", 61234.54, "events/s")
            .against("sled_batch_flush", 88000.0);
        assert_eq!(
            f.to_json(),
            r#"{"bench":"log","figure":"append_64_writers","value":61234.5,"unit":"events/s","baseline_name":"sled_batch_flush","baseline":88000.0,"ratio":0.7}"#
        );
        let rss = Figure::new("graphql", "serve_rss_idle", 400e6, "bytes")
            .against_size("serve_rss_empty", 100e6);
        assert_eq!(rss.ratio, Some(0.25));
        let plain = Figure::new("resources", "peak_rss", 1.0, "bytes");
        assert_eq!(
            plain.to_json(),
            r#"{"bench":"resources","figure":"peak_rss","value":1.0,"unit":"bytes"}"#
        );
    }
}
