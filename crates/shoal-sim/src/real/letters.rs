//! Direct letters to peers that are away, on real peers under churn: how many reach their recipient
//! within seconds of its return, and whether any holder ever kept one readable.
//!
//! A run: start the peers (structured topology, [`crate::real`]'s random graph, delayed links), take the
//! recipients offline, have the senders write to them (each letter carries a marker of its own), wait
//! until every letter is held by as many peers as senders place copies with, take the senders offline too (they never come back),
//! let the remaining peers churn (exponential sessions and absences, [`crate::real::churn_loop`]) for
//! `away_s`, then bring the recipients back and watch their inboxes. Afterwards every file in the home of
//! every peer other than a letter's sender and recipient is searched for the letter's marker: a hit is a
//! letter some third peer could read.
//!
//! ```toml
//! name = "letters-churn-2min"
//! [letters]
//! peers = 200
//! recipients = 40
//! senders = 20
//! letters = 1000
//! median_session_s = 120   # the peers that stay churn meanwhile
//! median_offline_s = 120
//! away_s = 60
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use shoal_net::NetConfig;
use shoal_node::messaging::Messaging;
use shoal_proto::messaging::delivery::DeliveryConfig;

use super::{
    RealError, State, churn_loop, lock, new_peers, random_addrs, set_online, settle_tables, start_all, start_node,
};
use crate::report::quantile;
use crate::scenario::{Churn, ScenarioError};
use crate::sim::Rng;

/// What to run.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LettersScenario {
    /// Peers.
    pub peers: usize,
    /// Peers written to while away.
    pub recipients: usize,
    /// Peers that write, then leave for good.
    pub senders: usize,
    /// Letters in all, each from a random sender to a random recipient.
    pub letters: usize,
    /// Connections each peer opens when it joins.
    #[serde(default = "default_links")]
    pub links: usize,
    /// Random seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// One-way delay of every link, milliseconds.
    #[serde(default = "default_delay")]
    pub link_delay_ms: u64,
    /// Median session of the peers that stay (exponential), seconds.
    pub median_session_s: f64,
    /// Median absence of the peers that stay, seconds.
    pub median_offline_s: f64,
    /// Seconds between the senders' departure and the recipients' return (the others churn meanwhile).
    #[serde(default = "default_away")]
    pub away_s: f64,
    /// A letter counts as on time when it arrives within this many seconds of its recipient's return.
    #[serde(default = "default_on_time")]
    pub on_time_s: f64,
    /// Seconds the recipients' inboxes are watched after their return.
    #[serde(default = "default_watch")]
    pub watch_s: f64,
    /// Seconds to wait for every letter to be held before the senders leave anyway.
    #[serde(default = "default_hold_wait")]
    pub hold_wait_s: f64,
}

fn default_links() -> usize {
    4
}
fn default_seed() -> u64 {
    1
}
fn default_delay() -> u64 {
    50
}
fn default_away() -> f64 {
    60.0
}
fn default_on_time() -> f64 {
    10.0
}
fn default_watch() -> f64 {
    60.0
}
fn default_hold_wait() -> f64 {
    60.0
}

impl LettersScenario {
    fn check(&self) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_string()));
        if !(10..=5_000).contains(&self.peers) {
            return bad("letters.peers is between 10 and 5,000");
        }
        if self.recipients == 0 || self.senders == 0 || (self.recipients + self.senders) * 2 > self.peers {
            return bad(
                "letters.recipients and letters.senders are at least 1, and together at most half of the peers",
            );
        }
        if !(1..=100_000).contains(&self.letters) || self.links == 0 {
            return bad("letters.letters is between 1 and 100,000, letters.links at least 1");
        }
        if self.link_delay_ms > 10_000 {
            return bad("letters.link_delay_ms is at most 10,000");
        }
        let times = [
            (self.median_session_s, "median_session_s"),
            (self.median_offline_s, "median_offline_s"),
            (self.away_s, "away_s"),
            (self.on_time_s, "on_time_s"),
            (self.watch_s, "watch_s"),
            (self.hold_wait_s, "hold_wait_s"),
        ];
        for (v, what) in times {
            if !(0.0..=86_400.0).contains(&v) {
                return Err(ScenarioError::Invalid(format!("letters.{what} is between 0 and 86,400 seconds")));
            }
        }
        if self.median_session_s <= 0.0 || self.median_offline_s <= 0.0 {
            return bad("letters.median_session_s and median_offline_s are above 0");
        }
        Ok(())
    }
}

/// A scenario file with a `[letters]` table (`None`: it has none, so it is another kind of scenario).
pub fn from_toml(text: &str) -> Result<Option<(String, LettersScenario)>, ScenarioError> {
    let Some((name, sc)) = crate::scenario::named_table::<LettersScenario>(text, "letters")? else { return Ok(None) };
    sc.check()?;
    Ok(Some((name, sc)))
}

/// What a letters run measured.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct LettersSummary {
    /// Scenario name.
    pub name: String,
    /// The scenario.
    pub scenario: LettersScenario,
    /// Letters written.
    pub sent: usize,
    /// Letters held by at least one peer when the senders left.
    pub held_when_senders_left: usize,
    /// Letters by the number of peers that held them when the senders left.
    pub held_by: BTreeMap<usize, usize>,
    /// Letters in their recipient's inbox by the end of the watch.
    pub delivered: usize,
    /// Of the letters written, the share that arrived within `on_time_s` of the recipient's return.
    pub on_time_ratio: f64,
    /// Milliseconds from the recipient's return to the letter's arrival: median, 99th percentile, maximum.
    pub after_return_p50_ms: f64,
    /// 99th percentile.
    pub after_return_p99_ms: f64,
    /// Maximum.
    pub after_return_max_ms: f64,
    /// Peers (not recipients, not senders) that left at least once while the recipients were away.
    pub churned_peers: usize,
    /// Letters whose text was found in a file of a peer other than its sender and recipient.
    pub readable_at_others: usize,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
}

/// Runs a letters scenario to the end.
pub fn run(name: &str, sc: &LettersScenario) -> Result<LettersSummary, RealError> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(name, sc))
}

/// One letter: who writes, to whom, its id once sent, and the marker its text carries.
struct Letter {
    from: usize,
    to: usize,
    id: Option<String>,
    marker: String,
}

fn service(peers: &super::Peers, i: usize) -> Option<Arc<Messaging>> {
    lock(peers)[i].node.as_ref()?.service::<Messaging>().ok()
}

async fn shutdown(peers: &super::Peers, who: &HashSet<usize>) {
    let nodes: Vec<_> = {
        let mut ps = lock(peers);
        who.iter()
            .filter_map(|&i| {
                ps[i].state = State::Offline;
                ps[i].node.take()
            })
            .collect()
    };
    futures::future::join_all(nodes.iter().map(shoal_node::Node::shutdown)).await;
}

async fn run_async(name: &str, sc: &LettersScenario) -> Result<LettersSummary, RealError> {
    let wall = Instant::now();
    let dir = super::homes_dir("shoal-sim-letters-")?;
    let mut rng = Rng::new(sc.seed);
    let peers = new_peers(dir.path(), sc.peers);
    let net = NetConfig::memory(false).with_link_delay(Duration::from_millis(sc.link_delay_ms));
    eprintln!("  starting {} peers ({} ms links) ...", sc.peers, sc.link_delay_ms);
    start_all(&peers, &mut rng, sc.links, &net).await?;
    settle_tables(&peers).await;

    // Recipients leave; letters are written to them by random others, each sender leaving for good once
    // its letters are held.
    let mut recipients = HashSet::new();
    while recipients.len() < sc.recipients {
        recipients.insert(rng.below(sc.peers));
    }
    let mut senders = HashSet::new();
    while senders.len() < sc.senders {
        let s = rng.below(sc.peers);
        if !recipients.contains(&s) {
            senders.insert(s);
        }
    }
    let (rlist, slist): (Vec<usize>, Vec<usize>) =
        (recipients.iter().copied().collect(), senders.iter().copied().collect());
    let mut letters: Vec<Letter> = (0..sc.letters)
        .map(|_| Letter {
            from: slist[rng.below(slist.len())],
            to: rlist[rng.below(rlist.len())],
            id: None,
            marker: format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
        })
        .collect();
    let ids: HashMap<usize, String> =
        lock(&peers).iter().enumerate().filter_map(|(i, p)| Some((i, p.id?.to_string()))).collect();
    eprintln!("  {} recipients leave; {} letters are written to them ...", recipients.len(), letters.len());
    shutdown(&peers, &recipients).await;
    let sends = letters.iter().map(|l| {
        let (svc, to) = (service(&peers, l.from), ids.get(&l.to).cloned());
        let text = format!("{}{}", String::from_utf8_lossy(MARK), l.marker);
        async move {
            match (svc, to) {
                (Some(svc), Some(to)) => svc.send(&to, &text).await.ok().map(|v| v.id),
                _ => None,
            }
        }
    });
    let sent_ids = futures::future::join_all(sends).await;
    for (l, id) in letters.iter_mut().zip(sent_ids) {
        l.id = id;
    }
    let sent = letters.iter().filter(|l| l.id.is_some()).count();

    let held_by = wait_held(&peers, &letters, &ids, Duration::from_secs_f64(sc.hold_wait_s)).await;
    let held = held_by.iter().filter(|(n, _)| **n > 0).map(|(_, k)| k).sum::<usize>();
    eprintln!(
        "  {held} of {sent} letters held; {} senders leave; the others churn for {} s ...",
        senders.len(),
        sc.away_s
    );
    // Who holds letters for each recipient as the senders leave (for the report of missing letters).
    let mut holders_of: HashMap<[u8; 32], Vec<(usize, usize)>> = HashMap::new();
    for (i, node) in super::online_nodes(&peers) {
        let mut count: HashMap<[u8; 32], usize> = HashMap::new();
        for row in node.store().held_letters().unwrap_or_default() {
            *count.entry(row.2).or_default() += 1;
        }
        for (key, n) in count {
            holders_of.entry(key).or_default().push((i, n));
        }
    }
    shutdown(&peers, &senders).await;
    let skip: HashSet<usize> = recipients.union(&senders).copied().collect();
    let churn = Churn { median_session_s: sc.median_session_s, median_offline_s: sc.median_offline_s };
    let left = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let churner = tokio::spawn(churn_loop(peers.clone(), churn, sc.seed ^ 0x1e77e5, net.clone(), sc.links, skip));
    let watcher = {
        let (peers, left) = (peers.clone(), left.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let gone: Vec<usize> =
                    lock(&peers).iter().enumerate().filter(|(_, p)| p.state != State::Online).map(|(i, _)| i).collect();
                shoal_store::lock(&left).extend(gone);
            }
        })
    };
    tokio::time::sleep(Duration::from_secs_f64(sc.away_s)).await;
    watcher.abort();
    let churned_peers =
        shoal_store::lock(&left).iter().filter(|i| !recipients.contains(i) && !senders.contains(i)).count();

    // The recipients return, each through random online peers, and their inboxes are watched.
    eprintln!("  {} recipients return ...", recipients.len());
    let mut returned = HashMap::new();
    let mut returned_utc = HashMap::new();
    for &r in &rlist {
        let home = lock(&peers)[r].home.clone();
        let boot = random_addrs(&peers, &mut rng, sc.links, r);
        let at = Instant::now();
        match start_node(&home, &net, boot).await {
            Ok((node, addr)) => {
                set_online(&peers, r, node, addr);
                returned.insert(r, at);
                returned_utc.insert(r, std::time::SystemTime::now());
            }
            Err(e) => eprintln!("  recipient {r} could not return: {e}"),
        }
    }
    let arrived = watch(&peers, &letters, &returned, Duration::from_secs_f64(sc.watch_s)).await;
    churner.abort();
    let _ = churner.await;
    // Who still holds letters for a recipient that lacks some: online holders point at finding them
    // (a lookup, a knock, a collection that failed), none at churn (every holder away).
    let missing: HashSet<usize> = letters
        .iter()
        .enumerate()
        .filter(|(k, l)| l.id.is_some() && !arrived.contains_key(k) && returned.contains_key(&l.to))
        .map(|(_, l)| l.to)
        .collect();
    for r in &missing {
        let Some(key) = lock(&peers)[*r].id.and_then(|p| author_key(&p)) else { continue };
        let mut online = Vec::new();
        for (i, node) in super::online_nodes(&peers) {
            let n = node.store().held_letters().map_or(0, |h| h.iter().filter(|row| row.2 == key).count());
            if n > 0 {
                online.push(format!("peer {i}: {n}"));
            }
        }
        let before: Vec<String> = holders_of
            .get(&key)
            .map(|v| {
                v.iter()
                    .map(|(i, n)| {
                        let what =
                            if senders.contains(i) { "sender, gone" } else { state_name(lock(&peers)[*i].state) };
                        format!("peer {i}: {n} ({what})")
                    })
                    .collect()
            })
            .unwrap_or_default();
        eprintln!(
            "  recipient {r} lacks letters; holders when the senders left: [{}]; online holders at the end: [{}]",
            before.join(", "),
            online.join(", ")
        );
    }
    stop_all(&peers).await;

    // Late letters by recipient: many late for one recipient points at its holders (all away), a few
    // spread over many at the hand-over itself.
    let mut late: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (k, l) in letters.iter().enumerate().filter(|(_, l)| l.id.is_some()) {
        match arrived.get(&k) {
            Some(d) if d.as_secs_f64() <= sc.on_time_s => {}
            Some(d) => late.entry(l.to).or_default().push(format!("{:.1} s", d.as_secs_f64())),
            None => late.entry(l.to).or_default().push("never".into()),
        }
    }
    for (r, when) in &late {
        let of = letters.iter().filter(|l| l.to == *r).count();
        // Its peer id and the time it returned, to find it in the nodes' log (`SHOAL_SIM_LOG`, UTC times).
        let peer = ids.get(r).map_or("?", String::as_str);
        let back = returned_utc.get(r).map_or_else(|| "?".into(), |t| utc_time(*t));
        eprintln!(
            "  late for recipient {r} ({peer}, back at {back} UTC; {} of its {of} letters): {}",
            when.len(),
            when.join(", ")
        );
    }
    let after: Vec<f64> = arrived.values().map(|d| d.as_secs_f64() * 1000.0).collect();
    let on_time = after.iter().filter(|ms| **ms <= sc.on_time_s * 1000.0).count();
    let readable_at_others = readable(&peers, &letters);
    Ok(LettersSummary {
        name: name.to_string(),
        scenario: sc.clone(),
        sent,
        held_when_senders_left: held,
        held_by,
        delivered: arrived.len(),
        on_time_ratio: on_time as f64 / letters.len().max(1) as f64,
        after_return_p50_ms: quantile(after.clone(), 0.5),
        after_return_p99_ms: quantile(after.clone(), 0.99),
        after_return_max_ms: after.iter().copied().fold(0.0, f64::max),
        churned_peers,
        readable_at_others,
        wall_seconds: wall.elapsed().as_secs_f64(),
    })
}

/// `HH:MM:SS.mmm` of a time, UTC (as the nodes' log prints it).
fn utc_time(t: std::time::SystemTime) -> String {
    let ms = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()) % 86_400_000;
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Online => "online",
        State::Offline => "offline",
        State::Leaving => "leaving",
    }
}

/// The Ed25519 key inside a peer id (what letters are sealed to and holders file them under).
fn author_key(peer: &libp2p::PeerId) -> Option<[u8; 32]> {
    let mh = peer.as_ref();
    let pk = libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    Some(pk.try_into_ed25519().ok()?.to_bytes())
}

/// Waits until every sent letter is held by as many peers as a sender places copies with (or `wait` is
/// up): how many letters were held by 0, 1, 2, ... peers then.
async fn wait_held(
    peers: &super::Peers,
    letters: &[Letter],
    ids: &HashMap<usize, String>,
    wait: Duration,
) -> BTreeMap<usize, usize> {
    let wanted = DeliveryConfig::default().holders;
    let deadline = Instant::now() + wait;
    loop {
        let mut by = BTreeMap::new();
        for l in letters {
            let (Some(id), Some(svc), Some(to)) = (&l.id, service(peers, l.from), ids.get(&l.to)) else { continue };
            let views = svc.letters_with(to, None, 1_000).await.unwrap_or_default();
            let n = views
                .iter()
                .find(|v| &v.id == id)
                .and_then(|v| v.status.as_deref()?.strip_prefix("held by ")?.parse().ok())
                .unwrap_or(0);
            *by.entry(n).or_default() += 1;
        }
        if by.keys().all(|n| *n >= wanted) || Instant::now() >= deadline {
            return by;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Watches the returned recipients' inboxes until every letter is in or `wait` is up: per letter index,
/// the time from its recipient's return to the first look that found it.
async fn watch(
    peers: &super::Peers,
    letters: &[Letter],
    returned: &HashMap<usize, Instant>,
    wait: Duration,
) -> HashMap<usize, Duration> {
    let deadline = Instant::now() + wait;
    let mut arrived = HashMap::new();
    let expected = letters.iter().filter(|l| l.id.is_some() && returned.contains_key(&l.to)).count();
    while arrived.len() < expected && Instant::now() < deadline {
        for (&r, at) in returned {
            let Some(svc) = service(peers, r) else { continue };
            let inbox = svc.inbox(100_000).await.unwrap_or_default();
            let got: HashSet<&str> = inbox.iter().filter(|v| !v.mine).map(|v| v.id.as_str()).collect();
            for (k, l) in letters.iter().enumerate() {
                if l.to == r
                    && !arrived.contains_key(&k)
                    && let Some(id) = &l.id
                    && got.contains(id.as_str())
                {
                    arrived.insert(k, at.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    arrived
}

/// Shuts every node down, waiting (bounded) for those the churn task was stopping or starting.
async fn stop_all(peers: &super::Peers) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes: Vec<_> = lock(peers).iter_mut().filter_map(|p| p.node.take()).collect();
        futures::future::join_all(nodes.iter().map(shoal_node::Node::shutdown)).await;
        let busy = lock(peers).iter().any(|p| p.state == State::Leaving || p.node.is_some());
        if !busy || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Letters whose marker is in some file of a peer other than its sender and recipient.
fn readable(peers: &super::Peers, letters: &[Letter]) -> usize {
    let homes: Vec<_> = lock(peers).iter().map(|p| p.home.clone()).collect();
    // The markers each peer's files hold: what follows every `letter ` in them.
    let found: Vec<HashSet<Vec<u8>>> = homes
        .iter()
        .map(|h| {
            let bytes = all_bytes(h);
            let mut markers = HashSet::new();
            let mut at = 0;
            while let Some(k) = find(&bytes[at..], MARK) {
                let from = at + k + MARK.len();
                if let Some(m) = bytes.get(from..from + MARKER_LEN) {
                    markers.insert(m.to_vec());
                }
                at = from;
            }
            markers
        })
        .collect();
    letters
        .iter()
        .filter(|l| found.iter().enumerate().any(|(i, m)| i != l.from && i != l.to && m.contains(l.marker.as_bytes())))
        .count()
}

/// What every letter's text starts with, then its marker of [`MARKER_LEN`] hex digits.
const MARK: &[u8] = b"letter ";
const MARKER_LEN: usize = 32;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every file under `dir`, concatenated (SQLite's database, its write-ahead log, anything else).
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.extend(bytes);
            }
        }
    }
    out
}
