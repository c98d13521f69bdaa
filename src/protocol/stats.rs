//! The server's live figures for its operators (`stats`, needs `admin`): the same counters
//! its metrics door serves to Prometheus, as one sample per series.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Client → server: the server's figures now (needs `admin`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {}

/// One series' value, as Prometheus names it: `name{labels} value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The series' name, e.g. `ferry_sessions_open`.
    pub name: String,
    /// Its labels, e.g. `{"transport": "tcp"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Its value now.
    pub value: f64,
}

/// Server → client: the answer to `stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Every series, in the order the metrics door lists them.
    pub samples: Vec<Sample>,
}

// Figures are finite numbers (counters, gauges, histogram sums): equality is exact.
impl Eq for StatsReport {}
impl Eq for Sample {}
