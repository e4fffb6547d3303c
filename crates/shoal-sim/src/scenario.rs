//! Scenarios: what to simulate, as a TOML file.
//!
//! ```toml
//! name = "pure-1k"
//! topology = "pure"            # pure | hybrid | supernode (virtual time) | structured (mode = "real")
//! mode = "virtual"             # or "real": real nodes on the memory transport (see `crate::real`)
//! encrypted = false            # real mode: Noise on every connection (default: plaintext handshake)
//! peers = 1000
//! degree = 8                   # overlay links per peer (pure), connections per peer (supernode)
//! seed = 1
//! latency_ms = [10, 50]        # per link, drawn once per link, uniformly
//! files = 200
//! replication = { kind = "uniform", copies = 10 }   # or "zipf" (copies = max copies, s) or "proportional"
//! queries = 100
//! query_zipf = 1.0             # popularity of files in queries (absent: uniform)
//! query_timeout_ms = 10000
//! warmup_s = 240               # seconds before the first query (default: see Scenario)
//! [churn]                      # absent: no churn
//! median_session_s = 120       # exponential session times with this median
//! median_offline_s = 120
//! [supernode]
//! capable_fraction = 0.3       # share of peers that may become supernodes
//! max_leaves = 64
//! ```

use serde::Deserialize;

/// The P2P variant simulated (the structured topology runs only as real peers: its core is libp2p's); the
/// node's own setting, from `shoal-proto`.
pub use shoal_proto::search::Topology;

/// How the peers are run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The sans-IO cores with a virtual clock and no sockets (pure, hybrid, supernode; up to millions).
    #[default]
    Virtual,
    /// Real Shoal nodes (libp2p swarms, stores, search drivers) on the in-process memory transport, in
    /// wall-clock time (structured; about a thousand).
    Real,
}

/// How many copies each file has.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Replication {
    /// Every file on `copies` random peers.
    Uniform {
        /// Copies per file.
        copies: usize,
    },
    /// File k (by popularity rank, from 1) on `copies / k^s` peers, at least one.
    Zipf {
        /// Copies of the most popular file.
        copies: usize,
        /// Exponent.
        s: f64,
    },
    /// Copies in proportion to query popularity, `total` copies in all (at least one each).
    Proportional {
        /// Copies over all files.
        total: usize,
    },
}

/// Peers leaving and coming back.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Median session length (exponential distribution), seconds.
    pub median_session_s: f64,
    /// Median time offline before coming back, seconds.
    pub median_offline_s: f64,
}

/// Supernode settings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupernodeSettings {
    /// Share of peers capable of being a supernode (the others never promote).
    #[serde(default = "default_capable")]
    pub capable_fraction: f64,
    /// Leaves per supernode.
    #[serde(default = "default_max_leaves")]
    pub max_leaves: usize,
}

fn default_capable() -> f64 {
    0.3
}

fn default_max_leaves() -> usize {
    64
}

impl Default for SupernodeSettings {
    fn default() -> Self {
        Self { capable_fraction: default_capable(), max_leaves: default_max_leaves() }
    }
}

/// A scenario.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name, for the output.
    #[serde(default)]
    pub name: String,
    /// The P2P variant.
    pub topology: Topology,
    /// Number of peers.
    pub peers: usize,
    /// Links (pure) or connections (supernode) per peer.
    #[serde(default = "default_degree")]
    pub degree: usize,
    /// TTLs of the expanding ring.
    #[serde(default = "default_ring")]
    pub ring: Vec<u8>,
    /// Random seed: the same seed gives the same run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Per-link latency range, milliseconds.
    #[serde(default = "default_latency")]
    pub latency_ms: [u64; 2],
    /// Number of distinct files.
    pub files: usize,
    /// How they are replicated.
    pub replication: Replication,
    /// Number of queries (run one after another).
    pub queries: usize,
    /// Zipf exponent of query popularity (absent: uniform).
    #[serde(default)]
    pub query_zipf: Option<f64>,
    /// How long a query may run, milliseconds.
    #[serde(default = "default_timeout")]
    pub query_timeout_ms: u64,
    /// Churn (absent: none).
    #[serde(default)]
    pub churn: Option<Churn>,
    /// Supernode settings.
    #[serde(default)]
    pub supernode: SupernodeSettings,
    /// Virtual seconds to run before the first query (absent: 120 for supernode, 60 with churn, else 0).
    /// With churn, a few session medians bring the network to its steady state.
    #[serde(default)]
    pub warmup_s: Option<f64>,
    /// Virtual-time cores or real nodes.
    #[serde(default)]
    pub mode: Mode,
    /// Real mode: Noise on every connection, as on real networks (default: libp2p's plaintext handshake,
    /// which still proves peer ids; Noise handshakes dominate the CPU at a thousand peers).
    #[serde(default)]
    pub encrypted: bool,
    /// Real mode: seconds of quiet before the lookups over which maintenance traffic is measured.
    #[serde(default = "default_maintenance_window")]
    pub maintenance_window_s: f64,
}

fn default_degree() -> usize {
    8
}
fn default_ring() -> Vec<u8> {
    vec![2, 4, 7]
}
fn default_seed() -> u64 {
    1
}
fn default_latency() -> [u64; 2] {
    [10, 50]
}
fn default_maintenance_window() -> f64 {
    30.0
}
fn default_timeout() -> u64 {
    10_000
}

impl Scenario {
    /// How often each file is asked for (Zipf with `query_zipf`, else uniform), summing to 1.
    pub fn popularity(&self) -> Vec<f64> {
        let weights: Vec<f64> = match self.query_zipf {
            Some(s) => (1..=self.files).map(|k| 1.0 / (k as f64).powf(s)).collect(),
            None => vec![1.0; self.files],
        };
        let total: f64 = weights.iter().sum();
        weights.iter().map(|w| w / total).collect()
    }

    /// Copies of file `k` (by popularity rank, from 0) under the replication rule, between 1 and `peers`.
    pub fn copies(&self, k: usize, popularity: &[f64]) -> usize {
        match &self.replication {
            Replication::Uniform { copies } => *copies,
            Replication::Zipf { copies, s } => ((*copies as f64) / ((k + 1) as f64).powf(*s)).round() as usize,
            Replication::Proportional { total } => {
                ((*total as f64) * popularity.get(k).copied().unwrap_or(0.0)).round() as usize
            }
        }
        .clamp(1, self.peers)
    }
}

/// A scenario that cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// Not valid TOML, or a key is unknown or mistyped.
    #[error("scenario: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range.
    #[error("scenario: {0}")]
    Invalid(String),
}

/// A scenario file whose settings are one table, `[key]`, beside an optional `name` (`[messaging]`,
/// `[letters]`, `[distribution]`); `None` when it has no such table.
pub(crate) fn named_table<T: serde::de::DeserializeOwned>(
    text: &str,
    key: &str,
) -> Result<Option<(String, T)>, ScenarioError> {
    let mut table: toml::Table = toml::from_str(text)?;
    let Some(settings) = table.remove(key) else { return Ok(None) };
    let name = match table.remove("name") {
        None => String::new(),
        Some(toml::Value::String(s)) => s,
        Some(_) => return Err(ScenarioError::Invalid("name is a string".into())),
    };
    if let Some(other) = table.keys().next() {
        return Err(ScenarioError::Invalid(format!("unknown key {other:?} beside [{key}]")));
    }
    Ok(Some((name, settings.try_into()?)))
}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let s: Self = toml::from_str(text)?;
        s.check()?;
        Ok(s)
    }

    /// Checks the values.
    pub fn check(&self) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_string()));
        if self.peers < 2 || self.peers > 10_000_000 {
            return bad("peers must be between 2 and 10,000,000");
        }
        match (self.mode, self.topology) {
            (Mode::Virtual, Topology::Structured) => {
                return bad(
                    "the structured topology runs only as real peers (mode = \"real\"): its core is libp2p's Kademlia",
                );
            }
            (Mode::Real, t) if t != Topology::Structured => {
                return bad("real mode runs the structured topology; pure, hybrid and supernode run in virtual time");
            }
            (Mode::Real, _) if self.peers > 5_000 => {
                return bad("real mode takes at most 5,000 peers (each is a whole node, ~10 MiB)");
            }
            (Mode::Virtual, _) if self.encrypted => return bad("encrypted applies to real mode only"),
            _ => {}
        }
        if self.degree == 0 || self.files == 0 || self.queries == 0 {
            return bad("degree, files and queries must be at least 1");
        }
        if self.ring.is_empty() || self.ring.iter().any(|t| *t == 0 || *t > shoal_proto::search::MAX_TTL) {
            return bad("ring TTLs must be between 1 and 7");
        }
        if self.latency_ms[0] > self.latency_ms[1] {
            return bad("latency_ms is [min, max] with min <= max");
        }
        if self.warmup_s.is_some_and(|w| !(0.0..=1e6).contains(&w)) {
            return bad("warmup_s is between 0 and 1,000,000");
        }
        if !(0.0..=3600.0).contains(&self.maintenance_window_s) {
            return bad("maintenance_window_s is between 0 and 3,600");
        }
        if let Some(c) = &self.churn
            && !(c.median_session_s > 0.0 && c.median_offline_s > 0.0)
        {
            return bad("churn medians must be positive");
        }
        if !(0.0..=1.0).contains(&self.supernode.capable_fraction) || self.supernode.max_leaves == 0 {
            return bad("supernode.capable_fraction is between 0 and 1 and max_leaves at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example_and_rejects_nonsense() {
        let s = Scenario::from_toml(
            r#"
            name = "x"
            topology = "supernode"
            peers = 100
            files = 10
            replication = { kind = "zipf", copies = 20, s = 1.0 }
            queries = 5
            [churn]
            median_session_s = 120
            median_offline_s = 60
            "#,
        )
        .unwrap();
        assert_eq!((s.topology, s.degree, s.ring.clone()), (Topology::Supernode, 8, vec![2, 4, 7]));
        assert!(Scenario::from_toml("topology = \"pure\"\npeers = 1\nfiles = 1\nqueries = 1\nreplication = { kind = \"uniform\", copies = 1 }").is_err());
        assert!(Scenario::from_toml("topology = \"mesh\"").is_err());
        assert!(Scenario::from_toml("topology = \"pure\"\npeers = 10\nfiles = 1\nqueries = 1\nreplication = { kind = \"uniform\", copies = 1 }\nbogus = 1").is_err());
    }
    #[test]
    fn a_table_scenario_is_found_by_its_table_and_checked() {
        use crate::real::{letters, messaging};
        let letters_file = "name = \"l\"\n[letters]\npeers = 50\nrecipients = 5\nsenders = 5\nletters = 10\nmedian_session_s = 60\nmedian_offline_s = 60\n";
        let (name, l) = letters::from_toml(letters_file).unwrap().unwrap();
        assert_eq!((name.as_str(), l.peers, l.away_s, l.on_time_s), ("l", 50, 60.0, 10.0));
        assert!(messaging::from_toml(letters_file).unwrap().is_none(), "not a messaging scenario");
        let (_, m) = messaging::from_toml("[messaging]\npeers = 10\nmesh_n = 3\ngossip_lazy = 2\n").unwrap().unwrap();
        assert_eq!((m.mesh_n, m.mesh().lazy, m.mesh().flood_publish), (Some(3), 2, false));
        for bad in [
            "[messaging]\npeers = 10\nmesh_n = 1\n",
            "[messaging]\npeers = 10\nmesh_n = 4\nmesh_high = 3\n",
            "[messaging]\npeers = 10\ngossip_lazy = 101\n",
            "[messaging]\npeers = 10\nflood_publish = 2\n",
            "[messaging]\npeers = 10\nbogus = 1\n",
            "bogus = 1\n[messaging]\npeers = 10\n",
            "name = 3\n[messaging]\npeers = 10\n",
        ] {
            assert!(messaging::from_toml(bad).is_err(), "{bad}");
        }
        let too_many = letters_file.replace("senders = 5", "senders = 30");
        assert!(letters::from_toml(&too_many).is_err(), "recipients and senders are at most half of the peers");
    }
}
