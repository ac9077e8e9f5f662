//! What a run found, for people (a table) and for scripts (one JSON line).
//! The report holds the plan and the ledger's counts as they are and
//! serialises them flat, so the JSON's field names are theirs.

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

use crate::ledger::Counts;
use crate::order::OrderCheck;
use crate::plan::Plan;

/// Lines kept verbatim in a report when they were not what was expected.
const SAMPLES: usize = 5;

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// Latencies as they are recorded, in microseconds.
pub struct Latencies(Histogram<u64>);

impl Latencies {
    /// From 1 µs to an hour, 3 significant digits.
    pub fn new() -> Latencies {
        Latencies(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros.max(1));
    }

    /// The percentiles; all zero when nothing was recorded.
    pub fn summary(&self) -> Latency {
        let h = &self.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

/// How long the phases of a run took.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Timing {
    /// Clients that completed registration, and how long that took.
    pub registered: usize,
    #[serde(serialize_with = "micro")]
    pub register_secs: f64,
    /// Messages sent, and how long sending took from the first.
    pub sent: u64,
    #[serde(serialize_with = "micro")]
    pub send_secs: f64,
    /// From the first message sent to the last delivery.
    #[serde(serialize_with = "micro")]
    pub elapsed_secs: f64,
    #[serde(serialize_with = "whole")]
    pub deliveries_per_sec: f64,
}

/// What a run found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The first server, as a one-server report has always named it.
    pub addr: std::net::SocketAddr,
    /// What was asked.
    #[serde(flatten)]
    pub plan: Plan,
    /// Clients that connected to each of the plan's `addrs`, in its order.
    pub clients_per_addr: Vec<usize>,
    /// Deliveries a perfect run makes.
    pub expected: u64,
    #[serde(flatten)]
    pub timing: Timing,
    #[serde(flatten)]
    pub counts: Counts,
    /// With `--same-order`: whether every client saw one order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_order: Option<OrderCheck>,
    /// Send to receipt at the other clients (own echoes excluded).
    #[serde(rename = "latency_us")]
    pub latency: Latency,
    pub timed_out: bool,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    /// A few of the lines that were not what was expected.
    pub samples: Vec<String>,
}

impl Report {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self.timed_out
            && self.counts.clean()
            && self.same_order.as_ref().is_none_or(OrderCheck::ok)
    }

    /// The report as rows of a table for people (see [`table`]).
    pub fn rows(&self) -> Vec<(String, String)> {
        let (plan, timing, counts) = (&self.plan, &self.timing, &self.counts);
        let pace = match plan.rate {
            Some(rate) => format!("{rate} msg/s per speaker"),
            None => "unpaced".to_string(),
        };
        let servers = match plan.addrs.as_slice() {
            [addr] => ("server", addr.to_string()),
            addrs => {
                let each: Vec<String> = addrs
                    .iter()
                    .zip(&self.clients_per_addr)
                    .map(|(addr, clients)| format!("{addr} ({clients} clients)"))
                    .collect();
                ("servers", format!("{} addresses: {}", addrs.len(), each.join(", ")))
            }
        };
        let mut rows: Vec<(&str, String)> = vec![
            servers,
            (
                "run",
                format!(
                    "{} clients ({} speaking) x {} messages x {} bytes, {} dialect, {pace}",
                    plan.clients,
                    plan.speakers,
                    plan.messages,
                    plan.size,
                    plan.dialect.name()
                ),
            ),
            ("registered", format!("{} in {:.3} s", timing.registered, timing.register_secs)),
            ("sent", format!("{} messages in {:.3} s", timing.sent, timing.send_secs)),
            ("expected", self.expected.to_string()),
            ("deliveries", counts.deliveries.to_string()),
            ("lost", counts.lost.to_string()),
            ("duplicated", counts.duplicated.to_string()),
            ("reordered", counts.reordered.to_string()),
            ("misattributed", counts.misattributed.to_string()),
            ("torn", counts.torn.to_string()),
            ("other lines", counts.other.to_string()),
            ("closed by server", counts.closed.to_string()),
            ("elapsed", format!("{:.3} s (first send to last delivery)", timing.elapsed_secs)),
            ("deliveries/s", format!("{:.0}", timing.deliveries_per_sec)),
        ];
        if let Some(order) = &self.same_order {
            rows.push(("same order", order.summary()));
        }
        let latency = &self.latency;
        if latency.count > 0 {
            rows.push((
                "latency ms",
                format!(
                    "p50 {}  p90 {}  p99 {}  max {}  ({} samples)",
                    ms(latency.p50),
                    ms(latency.p90),
                    ms(latency.p99),
                    ms(latency.max),
                    latency.count
                ),
            ));
        }
        if self.timed_out {
            rows.push(("timed out", "yes: these are the figures so far".to_string()));
        }
        if let Some(error) = &self.error {
            rows.push(("error", error.clone()));
        }
        for sample in &self.samples {
            rows.push(("unexpected", sample.clone()));
        }
        rows.push(("result", if self.ok() { "OK" } else { "FAILED" }.to_string()));
        rows.into_iter().map(|(name, value)| (name.to_string(), value)).collect()
    }
}

/// A few of the lines that were not what was expected, as text.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<String>);

impl Samples {
    /// Keeps `bytes` if there are fewer than a handful so far.
    pub fn note(&mut self, bytes: &[u8]) {
        if self.0.len() < SAMPLES {
            self.0.push(sample(bytes));
        }
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Text of a few bytes for a report: lossy UTF-8, control characters
/// escaped, cut to 120 characters.
pub fn sample(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes).escape_debug().collect();
    if text.chars().count() > 120 {
        format!("{}...", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

/// Rows of `name  value`, names padded to one width.
pub fn table(rows: &[(String, String)]) -> String {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    rows.iter().map(|(name, value)| format!("  {name:width$}  {value}\n")).collect()
}

/// Microseconds as milliseconds with 3 decimals.
fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// Rounds `x` to `places` decimals.
pub fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// Seconds to the microsecond in JSON.
pub fn micro<S: Serializer>(secs: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round(*secs, 6))
}

/// A rate as a whole number in JSON.
pub fn whole<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(x.round())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_summarise_their_percentiles() {
        let mut latencies = Latencies::new();
        assert_eq!(latencies.summary(), Latency::default());
        for us in 1..=1000 {
            latencies.record(us);
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 1000);
        assert_eq!((summary.p50, summary.p99, summary.max), (500, 990, 1000));
    }

    #[test]
    fn samples_are_few_escaped_and_short() {
        let mut samples = Samples::default();
        for i in 0..10 {
            samples.note(format!("line {i}\r").as_bytes());
        }
        let samples = samples.into_vec();
        assert_eq!(samples.len(), SAMPLES);
        assert_eq!(samples[0], "line 0\\r");
        assert_eq!(sample(&[b'x'; 200]).len(), 123);
    }

    #[test]
    fn tables_align_their_values() {
        let rows = [("a".to_string(), "1".to_string()), ("long name".to_string(), "2".to_string())];
        assert_eq!(table(&rows), "  a          1\n  long name  2\n");
    }
}
