//! File distribution in virtual time: one seed, N peers, per-peer upload caps, Shoal's own piece scheduler.
//!
//! Every downloading peer runs the real [`Scheduler`] of `shoal-proto` (the one the node's downloader
//! runs): it learns what its neighbours have, picks the rarest piece with its per-download tie-break, keeps
//! as many requests per peer as that peer's window allows (the node's: delivery rate times the answer
//! delay, halved when answers queue; `in_flight` caps the count), and moves slow requests elsewhere. A peer serves what it has verified,
//! as the node does. Uploads: each peer sends one piece at a time at its upload cap; answers on one
//! downloader's stream go in request order, and among the streams' heads the uploader picks with the
//! node's own [`UploadQueue`] (least-sent piece first; `serve = "fifo"` for plain arrival order, what the
//! node did before). When a piece comes from elsewhere, the downloader's scheduler cancels its other
//! requests for it and the `Cancel` reaches each uploader one link latency later, which drops it if it is
//! still waiting (as the node's provider does; a piece already being sent goes on). Downloads are not capped. A
//! piece completed by a peer is announced to its neighbours at once (the node re-asks providers what they
//! have every second; that delay is not modelled).
//!
//! The figure is the distribution time D (the last peer done) beside the textbook bounds for an
//! upload-limited swarm: `D_p2p = max(F/u_s, F/d_min, N*F/(u_s + sum u_i))` and the client-server time
//! `D_cs = max(N*F/u_s, F/d_min)`, with `d_min` infinite here.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Deserialize;
use shoal_proto::transfer::scheduler::{self, Action, Scheduler};
use shoal_proto::transfer::{Bitfield, Layout, UploadQueue};

use crate::sim::Rng;

/// A distribution scenario (the `[distribution]` table of a scenario file).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    /// Downloading peers (the seed is one more).
    pub peers: usize,
    /// File size, MiB.
    pub file_mib: f64,
    /// The seed's upload cap, MiB/s.
    pub seed_upload_mib_s: f64,
    /// Each peer's upload cap, MiB/s: drawn uniformly from `[min, max]` (equal caps: min = max).
    pub upload_mib_s: [f64; 2],
    /// Peers each peer knows and trades with (BitTorrent's peer set), at most `peers`.
    #[serde(default = "default_neighbours")]
    pub neighbours: usize,
    /// Most requests outstanding per provider, whatever its window says (absent: the node's, where the
    /// window alone decides, up to 64 MiB).
    #[serde(default)]
    pub in_flight: Option<usize>,
    /// Bytes each provider's window starts at, KiB (absent: the node's).
    #[serde(default)]
    pub initial_window_kib: Option<u64>,
    /// Piece size, KiB (absent: the node's own layout for this file size).
    #[serde(default)]
    pub piece_kib: Option<u64>,
    /// Per-link latency range, milliseconds.
    #[serde(default = "default_latency")]
    pub latency_ms: [u64; 2],
    /// Random seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Which queued request an uploader serves next.
    #[serde(default)]
    pub serve: Serve,
    /// The scheduler's `queue_slack`, seconds (absent: the node's, 0.05).
    #[serde(default)]
    pub queue_slack_s: Option<f64>,
    /// Seconds a request may wait before the downloader also asks another peer that has the piece (the
    /// node's default: 8).
    #[serde(default = "default_slow_after")]
    pub slow_after_s: f64,
    /// Also run these peer counts (for the distribution-time-vs-N plot).
    #[serde(default)]
    pub sweep: Vec<usize>,
    /// Downloaders send `Cancel` for requests they no longer need (the piece came from elsewhere), and
    /// uploaders drop them if still waiting, as the node does (default); false: the node before it had
    /// `Cancel`, which sent every request it had taken.
    #[serde(default = "default_cancel")]
    pub cancel_on_wire: bool,
}

/// An uploader's order of service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Serve {
    /// In the order requests arrived, over all downloaders.
    Fifo,
    /// What the node does under an upload cap: among the requests at the head of each downloader's
    /// stream, the piece this uploader has sent the fewest times first ([`UploadQueue`]).
    #[default]
    LeastSent,
}

fn default_slow_after() -> f64 {
    8.0
}

fn default_cancel() -> bool {
    true
}

fn default_neighbours() -> usize {
    40
}
fn default_latency() -> [u64; 2] {
    [10, 50]
}
fn default_seed() -> u64 {
    1
}

const MIB: f64 = 1024.0 * 1024.0;

impl Distribution {
    /// Checks the values.
    pub fn check(&self) -> Result<(), String> {
        if self.peers == 0 || self.peers > 100_000 || self.sweep.iter().any(|n| *n == 0 || *n > 100_000) {
            return Err("peers (and sweep values) must be between 1 and 100,000".into());
        }
        let [lo, hi] = self.upload_mib_s;
        if !(self.file_mib > 0.0 && self.seed_upload_mib_s > 0.0 && lo > 0.0 && hi >= lo) {
            return Err("file_mib, seed_upload_mib_s and upload_mib_s = [min, max] must be positive".into());
        }
        if self.neighbours == 0 || self.in_flight == Some(0) || self.latency_ms[0] > self.latency_ms[1] {
            return Err("neighbours and in_flight are at least 1; latency_ms is [min, max]".into());
        }
        if self.piece_kib.is_some_and(|k| !(16..=1024).contains(&k) || !k.is_power_of_two()) {
            return Err("piece_kib is a power of two between 16 and 1024".into());
        }
        Ok(())
    }
}

/// The outcome of one distribution.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DistResult {
    /// Downloading peers.
    pub peers: usize,
    /// File size, MiB.
    pub file_mib: f64,
    /// Pieces.
    pub pieces: u32,
    /// Distribution time: the last peer done, seconds.
    pub time_s: f64,
    /// Mean completion time, seconds.
    pub mean_s: f64,
    /// The peer-to-peer lower bound, seconds.
    pub bound_p2p_s: f64,
    /// The client-server time, seconds.
    pub bound_cs_s: f64,
    /// `time_s / bound_p2p_s`.
    pub ratio_to_p2p_bound: f64,
    /// Bytes the seed uploaded, in copies of the file.
    pub seed_copies: f64,
    /// When the seed had sent every piece at least once, seconds (F/u_s at best).
    pub seed_all_sent_s: f64,
    /// Peers that finished (all of them, unless something is wrong).
    pub finished: usize,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
}

enum Kind {
    /// A request reaches the uploader.
    Arrive { up: u32, from: u32, piece: u32 },
    /// The uploader has sent its current piece.
    Sent { up: u32 },
    /// A cancel reaches the uploader (unless `cancel_on_wire` is off).
    Cancel { up: u32, from: u32, piece: u32 },
    /// A piece reaches the downloader.
    Deliver { to: u32, from: u32, piece: u32 },
    /// Timers of a scheduler (slow requests).
    Poll(u32),
}

struct Event {
    at: Duration,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Uploader {
    rate: f64,
    /// `Serve::Fifo`: every waiting request, (downloader, piece), in arrival order.
    fifo: VecDeque<(u32, u32)>,
    /// `Serve::LeastSent`: each downloader's waiting pieces in request order; the head of each is in `heads`.
    streams: HashMap<u32, VecDeque<u32>>,
    heads: UploadQueue<u32, u32>,
    busy: Option<(u32, u32)>,
    bytes: u64,
    sent: Vec<u32>,
}

struct Swarm {
    base: Instant,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<Event>>,
    layout: Layout,
    pieces: u32,
    have: Vec<Bitfield>,
    scheds: Vec<Option<Scheduler<u32>>>,
    neighbours: Vec<Vec<u32>>,
    ups: Vec<Uploader>,
    done_at: Vec<Option<Duration>>,
    latency: [u64; 2],
    poll_pending: Vec<bool>,
    serve: Serve,
    cancel_on_wire: bool,
    seed_all_sent: Option<Duration>,
}

/// Runs one distribution of `d.file_mib` to `d.peers` peers.
pub fn distribute(d: &Distribution) -> DistResult {
    let wall = Instant::now();
    let mut rng = Rng::new(d.seed ^ d.peers as u64);
    let n = d.peers + 1;
    let size = (d.file_mib * MIB) as u64;
    let layout = match d.piece_kib {
        Some(k) => Layout::with_piece_size(size, k * 1024),
        None => Layout::new(size),
    };
    let pieces = layout.piece_count();
    let [lo, hi] = d.upload_mib_s;
    let mut ups: Vec<Uploader> = (0..n)
        .map(|i| {
            let rate = if i == 0 { d.seed_upload_mib_s } else { lo + (hi - lo) * rng.unit() };
            Uploader {
                rate: rate * MIB,
                fifo: VecDeque::new(),
                streams: HashMap::new(),
                heads: UploadQueue::new(),
                busy: None,
                bytes: 0,
                sent: vec![0; pieces as usize],
            }
        })
        .collect();
    // A random graph: each peer picks neighbours until it has `neighbours / 2`; links are both ways. The
    // seed is everyone's neighbour (a tracker or the DHT lists it to all).
    let k = d.neighbours.min(d.peers);
    let mut neighbours: Vec<Vec<u32>> = vec![Vec::new(); n];
    neighbours[0] = (1..n as u32).collect();
    for nb in neighbours.iter_mut().skip(1) {
        nb.push(0);
    }
    for i in 1..n {
        let mut tries = 0;
        while neighbours[i].len() < k / 2 + 1 && tries < 20 * k {
            tries += 1;
            let j = 1 + rng.below(d.peers);
            if j != i && !neighbours[i].contains(&(j as u32)) {
                neighbours[i].push(j as u32);
                neighbours[j].push(i as u32);
            }
        }
    }
    let base = Instant::now();
    let mut cfg = scheduler::Config::default();
    if let Some(q) = d.queue_slack_s {
        cfg = cfg.with_queue_slack(Duration::from_secs_f64(q));
    }
    if let Some(n) = d.in_flight {
        cfg = cfg.with_max_in_flight(n);
    }
    if let Some(k) = d.initial_window_kib {
        let max = cfg.window.max_bytes;
        cfg = cfg.with_window(k * 1024, max);
    }
    let cfg = cfg
        .with_piece_bytes(layout.piece_size())
        .with_slow_after(Duration::from_secs_f64(d.slow_after_s))
        // A seed asked by everyone answers late: that is not a fault to drop it for.
        .with_max_strikes(u32::MAX);
    let mut scheds: Vec<Option<Scheduler<u32>>> = Vec::with_capacity(n);
    scheds.push(None);
    for nb in neighbours.iter().skip(1) {
        let mut s = Scheduler::new(cfg.clone().with_tie_break(rng.next_u64()), pieces, []);
        for &j in nb {
            let have = if j == 0 { None } else { Some(Bitfield::new(pieces)) };
            s.add_peer(j, have, base);
        }
        scheds.push(Some(s));
    }
    let mut sw = Swarm {
        base,
        now: Duration::ZERO,
        seq: 0,
        queue: BinaryHeap::new(),
        layout,
        pieces,
        have: (0..n).map(|i| if i == 0 { Bitfield::full(pieces) } else { Bitfield::new(pieces) }).collect(),
        scheds,
        neighbours,
        ups: std::mem::take(&mut ups),
        done_at: vec![None; n],
        latency: d.latency_ms,
        poll_pending: vec![false; n],
        serve: d.serve,
        cancel_on_wire: d.cancel_on_wire,
        seed_all_sent: None,
    };
    for i in 1..n as u32 {
        sw.poll(i);
    }
    // Bounded: every event moves a piece or a request; a run that stalls ends when the queue is empty.
    while let Some(Reverse(ev)) = sw.queue.pop() {
        sw.now = ev.at;
        sw.process(ev.kind);
    }
    let times: Vec<f64> = sw.done_at[1..].iter().flatten().map(Duration::as_secs_f64).collect();
    let f = size as f64;
    let us = d.seed_upload_mib_s * MIB;
    let sum_u: f64 = sw.ups[1..].iter().map(|u| u.rate).sum();
    let np = d.peers as f64;
    let bound_p2p = (f / us).max(np * f / (us + sum_u));
    let time = times.iter().copied().fold(0.0, f64::max);
    DistResult {
        peers: d.peers,
        file_mib: d.file_mib,
        pieces,
        time_s: time,
        mean_s: times.iter().sum::<f64>() / times.len().max(1) as f64,
        bound_p2p_s: bound_p2p,
        bound_cs_s: np * f / us,
        ratio_to_p2p_bound: time / bound_p2p,
        seed_copies: sw.ups[0].bytes as f64 / f,
        seed_all_sent_s: sw.seed_all_sent.map_or(f64::NAN, |t| t.as_secs_f64()),
        finished: times.len(),
        wall_seconds: wall.elapsed().as_secs_f64(),
    }
}

impl Uploader {
    /// Drops the waiting request of downloader `from` for `piece` (its `Cancel` arrived).
    fn withdraw(&mut self, from: u32, piece: u32) {
        self.fifo.retain(|&(t, p)| (t, p) != (from, piece));
        let Some(stream) = self.streams.get_mut(&from) else { return };
        let head = stream.front().copied();
        stream.retain(|&p| p != piece);
        if stream.front().copied() != head {
            self.heads.remove(|_, to| *to == from);
            match stream.front() {
                Some(&p) => self.heads.push(p, from),
                None => {
                    self.streams.remove(&from);
                }
            }
        }
    }
}

impl Swarm {
    fn push(&mut self, after: Duration, kind: Kind) {
        self.seq += 1;
        self.queue.push(Reverse(Event { at: self.now + after, seq: self.seq, kind }));
    }

    fn link_latency(&self, a: u32, b: u32) -> Duration {
        let [lo, hi] = self.latency;
        let h = shoal_proto::rng::pair_hash(u64::from(a), u64::from(b));
        Duration::from_millis(lo + h % (hi - lo + 1))
    }

    fn process(&mut self, kind: Kind) {
        match kind {
            Kind::Arrive { up, from, piece } => {
                let u = &mut self.ups[up as usize];
                match self.serve {
                    Serve::Fifo => u.fifo.push_back((from, piece)),
                    Serve::LeastSent => {
                        let stream = u.streams.entry(from).or_default();
                        if stream.is_empty() {
                            u.heads.push(piece, from);
                        }
                        stream.push_back(piece);
                    }
                }
                self.start_next(up);
            }
            Kind::Sent { up } => {
                if let Some((to, piece)) = self.ups[up as usize].busy.take() {
                    let lat = self.link_latency(up, to);
                    self.push(lat, Kind::Deliver { to, from: up, piece });
                }
                self.start_next(up);
            }
            Kind::Deliver { to, from, piece } => self.deliver(to, from, piece),
            Kind::Cancel { up, from, piece } => self.ups[up as usize].withdraw(from, piece),
            Kind::Poll(i) => {
                self.poll_pending[i as usize] = false;
                self.poll(i);
            }
        }
    }

    fn start_next(&mut self, up: u32) {
        let u = &mut self.ups[up as usize];
        if u.busy.is_some() {
            return;
        }
        let next = match self.serve {
            Serve::Fifo => u.fifo.pop_front(),
            Serve::LeastSent => u.heads.pop().map(|(piece, to)| {
                // The downloader's next request becomes the head of its stream.
                if let Some(stream) = u.streams.get_mut(&to) {
                    stream.pop_front();
                    match stream.front() {
                        Some(&p) => u.heads.push(p, to),
                        None => {
                            u.streams.remove(&to);
                        }
                    }
                }
                (to, piece)
            }),
        };
        let Some((to, piece)) = next else { return };
        u.sent[piece as usize] += 1;
        if up == 0 && self.seed_all_sent.is_none() && u.sent.iter().all(|c| *c > 0) {
            let r = self.layout.piece_bytes(piece);
            self.seed_all_sent = Some(self.now + Duration::from_secs_f64((r.end - r.start) as f64 / u.rate));
        }
        let r = self.layout.piece_bytes(piece);
        let bytes = r.end - r.start;
        u.bytes += bytes;
        u.busy = Some((to, piece));
        let secs = bytes as f64 / u.rate;
        self.push(Duration::from_secs_f64(secs), Kind::Sent { up });
    }

    fn deliver(&mut self, to: u32, from: u32, piece: u32) {
        let now = self.base + self.now;
        let Some(s) = self.scheds[to as usize].as_mut() else { return };
        if !s.on_piece_ok(&from, piece, now) {
            self.poll(to);
            return;
        }
        self.have[to as usize].set(piece);
        if self.have[to as usize].count() == self.pieces {
            self.done_at[to as usize] = Some(self.now);
        }
        // Tell the neighbours (BitTorrent's HAVE): they may ask us for it now.
        for k in 0..self.neighbours[to as usize].len() {
            let j = self.neighbours[to as usize][k];
            if let Some(sj) = self.scheds[j as usize].as_mut()
                && !sj.is_finished()
            {
                sj.peer_has(&to, piece);
                self.poll(j);
            }
        }
        self.poll(to);
    }

    fn poll(&mut self, i: u32) {
        let now = self.base + self.now;
        let Some(s) = self.scheds[i as usize].as_mut() else { return };
        if s.is_finished() {
            return;
        }
        for a in s.poll(now) {
            match a {
                Action::Request { peer, piece } => {
                    let lat = self.link_latency(i, peer);
                    self.push(lat, Kind::Arrive { up: peer, from: i, piece });
                }
                Action::Cancel { peer, piece } if self.cancel_on_wire => {
                    let lat = self.link_latency(i, peer);
                    self.push(lat, Kind::Cancel { up: peer, from: i, piece });
                }
                // Without `Cancel` on the wire the uploader still sends it.
                Action::Cancel { .. } => {}
                Action::DropPeer { .. } => {}
            }
        }
        if !self.poll_pending[i as usize] {
            self.poll_pending[i as usize] = true;
            self.push(Duration::from_secs(1), Kind::Poll(i));
        }
    }
}

/// A scenario file's `[distribution]` table, if it has one (and a `name`, optionally).
pub fn from_toml(text: &str) -> Result<Option<Distribution>, crate::scenario::ScenarioError> {
    let Some((_, d)) = crate::scenario::named_table::<Distribution>(text, "distribution")? else { return Ok(None) };
    d.check().map_err(crate::scenario::ScenarioError::Invalid)?;
    Ok(Some(d))
}

/// Runs `d.peers`, then every size in `d.sweep`.
pub fn run_all(d: &Distribution) -> Vec<DistResult> {
    std::iter::once(d.peers)
        .chain(d.sweep.iter().copied())
        .map(|peers| distribute(&Distribution { peers, ..d.clone() }))
        .collect()
}

/// One line per run, with a header.
pub fn csv(results: &[DistResult]) -> String {
    let mut out =
        String::from("peers,file_mib,pieces,time_s,mean_s,bound_p2p_s,bound_cs_s,ratio_to_p2p_bound,seed_copies\n");
    for r in results {
        out.push_str(&format!(
            "{},{},{},{:.3},{:.3},{:.3},{:.3},{:.4},{:.3}\n",
            r.peers,
            r.file_mib,
            r.pieces,
            r.time_s,
            r.mean_s,
            r.bound_p2p_s,
            r.bound_cs_s,
            r.ratio_to_p2p_bound,
            r.seed_copies
        ));
    }
    out
}
