//! Node configuration and the data directory.
//!
//! The data directory holds `identity.key` (0600), `shoal.db` and `blobs/`. It is `SHOAL_HOME` when set,
//! otherwise the platform's data directory for Shoal (e.g. `~/.local/share/shoal` on Linux).

use std::path::PathBuf;
use std::time::Duration;

use shoal_net::NetConfig;

use crate::NodeError;

/// Everything a node needs to start.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Data directory.
    pub home: PathBuf,
    /// Network settings.
    pub net: NetConfig,
    /// Upload cap for all peers together, bytes per second (`None`: unlimited).
    pub upload_limit: Option<u64>,
    /// Upload cap towards any one peer, bytes per second.
    pub upload_limit_per_peer: Option<u64>,
    /// Download cap for all downloads together, bytes per second.
    pub download_limit: Option<u64>,
    /// Download cap from any one peer, bytes per second.
    pub download_limit_per_peer: Option<u64>,
    /// Download tuning.
    pub download: DownloadTuning,
    /// Which variant of the P2P model the network runs: how searches and provider lookups travel.
    pub topology: Topology,
    /// Search settings.
    pub search: SearchConfig,
    /// How often traffic is sampled for the bandwidth history and the live rates (zero: never).
    pub traffic_every: Duration,
    /// Test-only: flip a byte in every range this peer serves, to exercise verification. Never set this
    /// outside tests; peers that receive such data ban this peer.
    #[doc(hidden)]
    pub corrupt_uploads: bool,
}

/// How search behaves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SearchConfig {
    /// Overlay neighbours to keep (`pure`).
    pub degree: usize,
    /// TTLs of the expanding ring (`pure`), smallest first; each at most `shoal_proto::search::MAX_TTL`.
    pub ring: Vec<u8>,
    /// Index servers to register with (`hybrid`), each a multiaddr ending in `/p2p/<peer id>`.
    pub index_servers: Vec<libp2p::Multiaddr>,
    /// Be an index server (`hybrid`): keep the share lists of the peers that register.
    pub index_server: bool,
    /// How often a peer sends its full share list to its index servers again (`hybrid`).
    pub refresh: Duration,
    /// An index server forgets a peer not heard from for this long.
    pub expire: Duration,
    /// May this peer become a supernode (`supernode`)? Say no behind a NAT or on a weak link: there is no
    /// automatic reachability test yet. A capable peer also needs spare connections (under half of
    /// `max_connections`).
    pub supernode_capable: bool,
    /// Uptime before a capable peer may promote itself.
    pub supernode_min_uptime: Duration,
    /// Time without a supernode before a capable leaf promotes itself (plus a random share of it).
    pub supernode_orphan_wait: Duration,
    /// Leaves a supernode accepts.
    pub supernode_max_leaves: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            degree: 8,
            ring: vec![2, 4, shoal_proto::search::MAX_TTL],
            index_servers: Vec::new(),
            index_server: false,
            refresh: Duration::from_secs(5 * 60),
            expire: Duration::from_secs(15 * 60),
            supernode_capable: true,
            supernode_min_uptime: Duration::from_secs(120),
            supernode_orphan_wait: Duration::from_secs(5),
            supernode_max_leaves: 64,
        }
    }
}

impl SearchConfig {
    /// Sets the index servers to register with.
    pub fn with_index_servers(mut self, servers: Vec<libp2p::Multiaddr>) -> Self {
        self.index_servers = servers;
        self
    }

    /// Makes this peer an index server (or not).
    pub fn with_index_server(mut self, on: bool) -> Self {
        self.index_server = on;
        self
    }

    /// Sets whether this peer may become a supernode, and after what uptime and orphan wait.
    pub fn with_supernode(mut self, capable: bool, min_uptime: Duration, orphan_wait: Duration) -> Self {
        self.supernode_capable = capable;
        self.supernode_min_uptime = min_uptime;
        self.supernode_orphan_wait = orphan_wait;
        self
    }

    /// Sets the refresh interval and the expiry of silent peers.
    pub fn with_refresh(mut self, refresh: Duration, expire: Duration) -> Self {
        self.refresh = refresh;
        self.expire = expire;
        self
    }
}

/// The variant of the P2P model a network runs (decided in `shoal-proto`, shared with the simulator).
pub use shoal_proto::search::Topology;

/// How downloads behave.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DownloadTuning {
    /// Most bytes requested and not yet received from one provider. Each provider's window adapts below it
    /// (its delivery rate times the round trip, see `shoal_proto::transfer::window`); this bounds what a
    /// long fat link may take: 64 MiB is twice the 30 MB in flight at 100 MB/s and 300 ms.
    pub max_bytes_in_flight: u64,
    /// A request outstanding this long counts as slow; its piece goes to another peer.
    pub slow_after: Duration,
    /// Give up when no provider answered for this long.
    pub stall_timeout: Duration,
    /// How long to collect first answers from providers before requesting pieces, so that work is spread
    /// over all of them rather than given to whoever answered first. Providers a request names with the
    /// blob's size are in from the start and are not waited for.
    pub gather: Duration,
    /// How often the verified ranges are made durable.
    pub checkpoint_every: Duration,
    /// Write pieces of 256 KiB and more with `O_DIRECT`, around the page cache (`Partial::commit` says
    /// why); off, every write goes through the page cache.
    pub direct_writes: bool,
    /// Before a completed file gets its name, hash it again from the disk and refuse it unless it is the
    /// id (qBittorrent's "recheck on completion"). Off by default: every piece was verified before it was
    /// written and one writer holds the blob's lock, so this only catches the disk or another program
    /// changing the file meanwhile, at the price of reading it all again from the disk (a 1 GiB download
    /// took 0.9-1.1 s without it and 1.6-2.9 s with it on the development machine).
    pub recheck_on_finish: bool,
}

impl Default for DownloadTuning {
    fn default() -> Self {
        Self {
            max_bytes_in_flight: 64 << 20,
            slow_after: Duration::from_secs(8),
            stall_timeout: Duration::from_secs(60),
            gather: Duration::from_millis(300),
            checkpoint_every: Duration::from_millis(100),
            direct_writes: true,
            recheck_on_finish: false,
        }
    }
}

impl NodeConfig {
    /// Defaults for a user's peer in `home`: all interfaces, mDNS on.
    pub fn new(home: PathBuf) -> Self {
        Self {
            home,
            net: NetConfig::default(),
            upload_limit: None,
            upload_limit_per_peer: None,
            download_limit: None,
            download_limit_per_peer: None,
            topology: Topology::default(),
            search: SearchConfig::default(),
            download: DownloadTuning::default(),
            traffic_every: Duration::from_secs(5),
            corrupt_uploads: false,
        }
    }

    /// A peer on 127.0.0.1, port 0, mDNS off: for tests, benchmarks and the demo.
    pub fn loopback(home: PathBuf) -> Self {
        Self { net: NetConfig::loopback(), ..Self::new(home) }
    }

    /// Sets the network settings.
    pub fn with_net(mut self, net: NetConfig) -> Self {
        self.net = net;
        self
    }

    /// Sets the upload cap.
    pub fn with_upload_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.upload_limit = bytes_per_sec;
        self
    }

    /// Sets the per-peer upload cap and the global and per-peer download caps.
    pub fn with_limits(
        mut self,
        upload_per_peer: Option<u64>,
        download: Option<u64>,
        download_per_peer: Option<u64>,
    ) -> Self {
        self.upload_limit_per_peer = upload_per_peer;
        self.download_limit = download;
        self.download_limit_per_peer = download_per_peer;
        self
    }

    /// Sets the topology.
    pub fn with_topology(mut self, t: Topology) -> Self {
        self.topology = t;
        self
    }

    /// Sets the search settings.
    pub fn with_search(mut self, search: SearchConfig) -> Self {
        self.search = search;
        self
    }

    /// Sets the number of overlay neighbours (`pure`).
    pub fn with_degree(mut self, degree: usize) -> Self {
        self.search.degree = degree;
        self
    }

    /// Sets the download tuning.
    pub fn with_download(mut self, d: DownloadTuning) -> Self {
        self.download = d;
        self
    }
}

impl DownloadTuning {
    /// Sets the stall timeout.
    pub fn with_stall_timeout(mut self, d: Duration) -> Self {
        self.stall_timeout = d;
        self
    }

    /// Sets the slow-request threshold.
    pub fn with_slow_after(mut self, d: Duration) -> Self {
        self.slow_after = d;
        self
    }

    /// Turns hashing a completed file again from the disk on or off (see `recheck_on_finish`).
    pub fn with_recheck_on_finish(mut self, on: bool) -> Self {
        self.recheck_on_finish = on;
        self
    }

    /// Turns writing large pieces around the page cache on or off.
    pub fn with_direct_writes(mut self, on: bool) -> Self {
        self.direct_writes = on;
        self
    }
}

/// The data directory: `SHOAL_HOME`, else the platform data directory.
pub fn default_home() -> Result<PathBuf, NodeError> {
    if let Some(h) = std::env::var_os("SHOAL_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    directories::ProjectDirs::from("", "", "shoal").map(|d| d.data_dir().to_path_buf()).ok_or(NodeError::Home {
        path: PathBuf::from("~"),
        why: "no home directory found; set SHOAL_HOME to a directory for Shoal's data".into(),
    })
}
