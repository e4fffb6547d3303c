//! The supernode topology (Gnutella ultrapeers, Kazaa), sans-IO: roles, election, leaves and digests.
//!
//! Every peer starts as a leaf. A leaf attaches to up to [`Config::supers_per_leaf`] supernodes it has heard
//! of (`Role` messages list them), sends each its keyword [`Digest`], and sends its searches to them. A
//! supernode accepts up to [`Config::max_leaves`] leaves, links to other supernodes (the flooding router's
//! `Join`, up to its degree), floods queries among supernodes only, and passes a query to a leaf only when
//! the leaf's digest matches (with TTL 1: the leaf answers and forwards nothing).
//!
//! Election: a peer that is *capable* (the host says so: reachable, spare connections and bandwidth) and
//! has been up for [`Config::min_uptime`] promotes itself once it has been without a supernode for
//! [`Config::orphan_wait`] plus a per-peer random delay (so that neighbours do not all promote at once).
//! Supernodes refuse leaves beyond their capacity, so a network with too few supernodes leaves leaves
//! orphaned, and capable orphans promote: supply follows demand. When a leaf's supernode dies the leaf
//! attaches to another it knows at its next poll, or promotes itself if it knows none.
//!
//! The router underneath is [`Flood`]: for a supernode its neighbours are other supernodes; for a leaf they
//! are its supernodes (added without a handshake), so a leaf's search goes to them with the expanding ring.
//!
//! Over 600 lines because roles, election, leaves and supernode links are one state machine over shared
//! state (a promotion changes all three); its tests are in `supernode/tests.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::digest::Digest;
use super::flood::{self, Action, Flood, SearchId};
use super::messages::{Hit, Query, SearchMsg};
use crate::rng::{Secret, SplitMix64};

/// Refusals an orphaned capable leaf takes before it promotes itself although it knows supernodes.
const REFUSALS_BEFORE_PROMOTING: u32 = 3;

/// Tuning of the supernode layer.
#[derive(Clone, Debug)]
pub struct Config {
    /// The router (its `degree` is the number of supernode-to-supernode links).
    pub flood: flood::Config,
    /// May this peer become a supernode (reachable, spare capacity)? The host decides.
    pub capable: bool,
    /// Uptime before a capable peer may promote itself.
    pub min_uptime: Duration,
    /// Time without a supernode before a capable leaf promotes itself (plus a random share of it again).
    pub orphan_wait: Duration,
    /// Leaves a supernode accepts.
    pub max_leaves: usize,
    /// Supernodes a leaf keeps (1 to 3).
    pub supers_per_leaf: usize,
    /// A supernode that refused or did not answer is asked again after this long.
    pub retry_after: Duration,
    /// Every peer tells the peers that need it its role and the supernodes it knows this often, so that
    /// knowledge of supernodes spreads and their overlay heals after failures (Gnutella's pongs). Those
    /// peers are its supernodes, its leaves, its supernode links, and connected peers that know no
    /// supernode (orphans); a connection kept for other reasons gets a `Role` when it comes up and on news.
    /// A leaf that has a supernode but wants more asks at most one more per period.
    pub gossip_every: Duration,
    /// A supernode with fewer leaves than this (at most half of `max_leaves`), linked to at least half its degree of other supernodes and
    /// a supernode for three gossip periods, steps down to leaf (with probability 1/4 per gossip period, so
    /// that underused supernodes do not all leave at once). Supply follows demand both ways: a network that
    /// started with everyone orphaned promotes too many (seen at 10,000 peers: 13%).
    pub demote_below: usize,
    /// Pass news of a supernode on at once (not only at the next gossip): faster healing in small networks,
    /// a cascade of messages in large ones.
    pub spread_news: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            flood: flood::Config { degree: 6, ..flood::Config::default() },
            capable: true,
            min_uptime: Duration::from_secs(120),
            orphan_wait: Duration::from_secs(5),
            max_leaves: 64,
            supers_per_leaf: 2,
            retry_after: Duration::from_secs(10),
            gossip_every: Duration::from_secs(20),
            demote_below: 16,
            spread_news: true,
        }
    }
}

/// What a peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Attached to supernodes.
    Leaf,
    /// Carries search traffic for its leaves.
    Super,
}

/// Something the host must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SuperAction<P> {
    /// What the router asks for (send, answer, deliver, finished...).
    Flood(Action<P>),
    /// Send a `Role` message: our role and supernodes we know (peer, addresses).
    SendRole {
        /// To whom.
        to: P,
        /// Our role.
        role: Role,
        /// Supernodes we know (ourselves first when we are one).
        supers: Vec<(P, Vec<Vec<u8>>)>,
    },
    /// Connect to `peer` at `addrs` (a supernode to attach or link to).
    Dial {
        /// The peer.
        peer: P,
        /// Its addresses.
        addrs: Vec<Vec<u8>>,
    },
    /// This peer became a supernode.
    Promoted,
    /// This peer stepped down to leaf (too few leaves, other supernodes around).
    Demoted,
}

/// The supernode layer of one peer.
#[derive(Debug)]
pub struct Supernode<P> {
    cfg: Config,
    me: P,
    my_addrs: Vec<Vec<u8>>,
    role: Role,
    started: Instant,
    flood: Flood<P>,
    /// Peers we are connected to (they get our `Role`).
    up: BTreeSet<P>,
    /// What each connected peer last told us: the supernodes it has live links with (itself included when
    /// it is one). Knowledge dies with the peer that gave it, so a dead supernode is not passed around.
    heard: BTreeMap<P, BTreeSet<P>>,
    /// For each supernode in `heard`, how many of those sets hold it (kept in step, so that the set of known
    /// supernodes is not rebuilt on every message).
    heard_refs: BTreeMap<P, u32>,
    /// Connected peers that told us they are supernodes.
    direct: BTreeSet<P>,
    /// Addresses of supernodes we heard of.
    addrs: BTreeMap<P, Vec<Vec<u8>>>,
    /// Leaf: supernodes we asked to attach to, and when.
    attaching: HashMap<P, Instant>,
    /// Leaf: supernodes that refused or did not answer, and when.
    refused: HashMap<P, Instant>,
    /// Leaf: since when we have had no supernode.
    orphan_since: Option<Instant>,
    jitter: Duration,
    /// Supernode: its leaves and their digests.
    leaves: BTreeMap<P, Option<Digest>>,
    /// Leaf: our digest.
    digest: Digest,
    /// Supernode: hop counts of queries being answered, to pass them on to leaves.
    pending_hops: HashMap<u64, (P, u8)>,
    last_gossip: Instant,
    /// Leaf with a supernode: when it last asked for one more.
    last_extra: Option<Instant>,
    /// Leaf without a supernode: refusals since it became an orphan.
    refusals: u32,
    /// Where the next search for candidates starts (see `candidates`).
    cursor: Option<P>,
    /// Supernode: since when.
    promoted_at: Option<Instant>,
    /// For the demotion coin.
    rng: SplitMix64,
}

impl<P: Clone + Ord + Hash> Supernode<P> {
    /// A leaf that has just started.
    /// `key` makes query ids and, through [`Secret::seed`], the promotion jitter and the demotion coin.
    pub fn new(cfg: Config, me: P, my_addrs: Vec<Vec<u8>>, key: impl Into<Secret>, now: Instant) -> Self {
        let key = key.into();
        let mut rng = SplitMix64::new(key.seed());
        // The promotion delay: orphan_wait plus a share of it picked from the seed.
        let jitter = cfg.orphan_wait.mul_f64(rng.unit());
        let flood = Flood::new(cfg.flood.clone(), key);
        Self {
            cfg,
            me,
            my_addrs,
            role: Role::Leaf,
            started: now,
            flood,
            up: BTreeSet::new(),
            heard: BTreeMap::new(),
            heard_refs: BTreeMap::new(),
            direct: BTreeSet::new(),
            addrs: BTreeMap::new(),
            attaching: HashMap::new(),
            refused: HashMap::new(),
            orphan_since: Some(now),
            jitter,
            leaves: BTreeMap::new(),
            digest: Digest::new(),
            pending_hops: HashMap::new(),
            last_gossip: now,
            last_extra: None,
            refusals: 0,
            cursor: None,
            promoted_at: None,
            rng,
        }
    }

    /// The host's current judgement of whether this peer could carry a supernode's load.
    pub fn set_capable(&mut self, capable: bool) {
        self.cfg.capable = capable;
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The router underneath.
    pub fn flood(&self) -> &Flood<P> {
        &self.flood
    }

    /// Supernode: our leaves. Leaf: nothing.
    pub fn leaves(&self) -> impl Iterator<Item = &P> {
        self.leaves.keys()
    }

    /// Leaf: the supernodes we are attached to. Supernode: the supernodes we link to.
    pub fn supers(&self) -> impl Iterator<Item = &P> {
        self.flood.neighbours()
    }

    fn wrap(actions: Vec<Action<P>>) -> Vec<SuperAction<P>> {
        actions.into_iter().map(SuperAction::Flood).collect()
    }

    /// Replaces what `from` told us; returns true when a supernode we did not know appeared.
    fn set_heard(&mut self, from: P, set: BTreeSet<P>) -> bool {
        if set.contains(&from) {
            self.direct.insert(from.clone());
        } else {
            self.direct.remove(&from);
        }
        let mut news = false;
        for p in &set {
            let n = self.heard_refs.entry(p.clone()).or_insert(0);
            news |= *n == 0 && !self.flood.is_neighbour(p) && *p != self.me;
            *n += 1;
        }
        if let Some(old) = self.heard.insert(from, set) {
            for p in old {
                self.unref(&p);
            }
        }
        news
    }

    fn unref(&mut self, p: &P) {
        if let Some(n) = self.heard_refs.get_mut(p) {
            *n -= 1;
            if *n == 0 {
                self.heard_refs.remove(p);
                if !self.flood.is_neighbour(p) {
                    self.addrs.remove(p);
                }
            }
        }
    }

    /// Up to `max` known supernodes we are not linked with, not refused lately, that pass `also(self, peer)`; with
    /// addresses. (Only those taken are cloned: a peer may know thousands.)
    ///
    /// Taken round-robin from a cursor that starts at our own id: in key order from the start, every peer
    /// asked the same few supernodes, which were full, and never got to the others (seen at 10,000 peers:
    /// every `Attach` and `Join` refused, a quarter of the leaves orphaned).
    fn candidates(&mut self, max: usize, also: impl Fn(&Self, &P) -> bool) -> Vec<(P, Vec<Vec<u8>>)> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let from = self.cursor.clone().unwrap_or_else(|| self.me.clone());
        let picked: Vec<P> = self
            .heard_refs
            .range((Excluded(&from), Unbounded))
            .chain(self.heard_refs.range((Unbounded, Included(&from))))
            .map(|(p, _)| p)
            .filter(|p| {
                **p != self.me && !self.flood.is_neighbour(p) && !self.refused.contains_key(*p) && also(self, p)
            })
            .take(max)
            .cloned()
            .collect();
        if let Some(last) = picked.last() {
            self.cursor = Some(last.clone());
        }
        picked
            .into_iter()
            .map(|p| {
                let a = self.addrs.get(&p).cloned().unwrap_or_default();
                (p, a)
            })
            .collect()
    }

    /// What we tell others: only supernodes we have live links with (ourselves, our supernodes or linked
    /// supernodes, supernodes we are connected to), never second-hand ones.
    fn role_list(&self) -> Vec<(P, Vec<Vec<u8>>)> {
        let mut live: Vec<P> = Vec::new();
        if self.role == Role::Super {
            live.push(self.me.clone());
        }
        live.extend(self.flood.neighbours().cloned());
        live.extend(self.direct.iter().take(super::messages::MAX_ROLE_SUPERS).cloned());
        let mut seen = BTreeSet::new();
        live.retain(|p| seen.insert(p.clone()));
        live.truncate(super::messages::MAX_ROLE_SUPERS);
        live.into_iter()
            .map(|p| {
                let a =
                    if p == self.me { self.my_addrs.clone() } else { self.addrs.get(&p).cloned().unwrap_or_default() };
                (p, a)
            })
            .collect()
    }

    fn role_to(&self, to: P) -> SuperAction<P> {
        SuperAction::SendRole { to, role: self.role, supers: self.role_list() }
    }

    /// The periodic gossip: only to peers for which it is news or upkeep (see [`Config::gossip_every`]).
    /// Sending it to every connection made maintenance grow with connections kept open (a leaf keeps the
    /// ones to supernodes that refused it): 3.6 `Role` messages per peer per second at 1,000 peers.
    fn roles_to_those_who_need_them(&self) -> Vec<SuperAction<P>> {
        let list = self.role_list();
        let needs = |p: &P| {
            self.flood.is_neighbour(p)
                || self.leaves.contains_key(p)
                || self.heard.get(p).is_none_or(|known| known.is_empty())
        };
        self.up
            .iter()
            .filter(|p| needs(p))
            .map(|p| SuperAction::SendRole { to: p.clone(), role: self.role, supers: list.clone() })
            .collect()
    }

    fn roles_to_all(&self) -> Vec<SuperAction<P>> {
        let list = self.role_list();
        self.up.iter().map(|p| SuperAction::SendRole { to: p.clone(), role: self.role, supers: list.clone() }).collect()
    }

    /// A connection to `peer` is up: tell it what we are.
    pub fn peer_up(&mut self, peer: P) -> Vec<SuperAction<P>> {
        if peer == self.me || !self.up.insert(peer.clone()) {
            return Vec::new();
        }
        vec![self.role_to(peer)]
    }

    /// `peer` is gone.
    pub fn peer_gone(&mut self, peer: &P, now: Instant) -> Vec<SuperAction<P>> {
        self.up.remove(peer);
        self.direct.remove(peer);
        if let Some(old) = self.heard.remove(peer) {
            for p in old {
                self.unref(&p);
            }
        }
        let mut holders = 0;
        for set in self.heard.values_mut() {
            holders += u32::from(set.remove(peer));
        }
        for _ in 0..holders {
            self.unref(peer);
        }
        self.addrs.remove(peer);
        self.attaching.remove(peer);
        self.leaves.remove(peer);
        let out = Self::wrap(self.flood.peer_gone(peer));
        if self.role == Role::Leaf && self.flood.neighbours().next().is_none() && self.orphan_since.is_none() {
            self.orphan_since = Some(now);
        }
        out
    }

    /// A `Role` message: `from` is a supernode or not, and knows these supernodes.
    pub fn on_role(
        &mut self,
        from: P,
        role: Role,
        supers: Vec<(P, Vec<Vec<u8>>)>,
        now: Instant,
    ) -> Vec<SuperAction<P>> {
        let mut set = BTreeSet::new();
        if role == Role::Super {
            set.insert(from.clone());
        }
        for (p, addrs) in supers {
            if p != self.me {
                if !addrs.is_empty() {
                    self.addrs.insert(p.clone(), addrs);
                }
                set.insert(p);
            }
        }
        let news = self.set_heard(from, set);
        // Act on it at once only when it may help: news, or we lack supernodes (leaf) or links (supernode).
        // Otherwise the next poll will do; polling on every `Role` was most of the simulator's time at
        // 30,000 peers.
        let lacking = match self.role {
            Role::Leaf => self.flood.neighbours().count() < self.cfg.supers_per_leaf.clamp(1, 3),
            Role::Super => self.flood.wants_neighbours(),
        };
        let mut out = if news || lacking { self.poll(now) } else { Vec::new() };
        // A supernode we had not heard of: pass the news on now rather than at the next gossip.
        if news && self.cfg.spread_news {
            out.extend(self.roles_to_all());
        }
        out
    }

    /// Our digest changed (shares changed): keep it, and send it to our supernodes.
    pub fn set_digest(&mut self, digest: Digest) -> Vec<SuperAction<P>> {
        self.digest = digest;
        self.flood
            .neighbours()
            .filter(|_| self.role == Role::Leaf)
            .map(|s| {
                SuperAction::Flood(Action::Send {
                    to: s.clone(),
                    msg: SearchMsg::Digest { bits: self.digest.as_bytes().to_vec() },
                })
            })
            .collect()
    }

    /// A message from `from` (anything but `Role`).
    pub fn on_message(&mut self, from: P, msg: SearchMsg, now: Instant) -> Vec<SuperAction<P>> {
        let send = |to: P, msg: SearchMsg| SuperAction::Flood(Action::Send { to, msg });
        match msg {
            SearchMsg::Attach => {
                let ok = self.role == Role::Super
                    && (self.leaves.contains_key(&from) || self.leaves.len() < self.cfg.max_leaves);
                if ok {
                    self.leaves.entry(from.clone()).or_insert(None);
                }
                vec![send(from, SearchMsg::Attached { accepted: ok })]
            }
            SearchMsg::Attached { accepted } => {
                let asked = self.attaching.remove(&from).is_some();
                if !asked {
                    return Vec::new();
                }
                if accepted && self.role == Role::Leaf && self.flood.add_neighbour(from.clone()) {
                    self.orphan_since = None;
                    self.refusals = 0;
                    let mut out = vec![send(from, SearchMsg::Digest { bits: self.digest.as_bytes().to_vec() })];
                    // Tell the others whom we are attached to: supernodes learn of each other this way.
                    out.extend(self.roles_to_all());
                    out
                } else {
                    self.refused.insert(from.clone(), now);
                    self.refusals = self.refusals.saturating_add(u32::from(!accepted));
                    if accepted {
                        // We no longer want it (full, or promoted meanwhile).
                        return vec![send(from, SearchMsg::Leave)];
                    }
                    Vec::new()
                }
            }
            SearchMsg::Digest { bits } => {
                if let (Some(slot), Some(d)) = (self.leaves.get_mut(&from), Digest::from_bytes(bits)) {
                    *slot = Some(d);
                }
                Vec::new()
            }
            SearchMsg::Leave if self.leaves.remove(&from).is_some() => Vec::new(),
            SearchMsg::Join if self.role == Role::Leaf => vec![send(from, SearchMsg::Joined { accepted: false })],
            SearchMsg::Query { qid, hops, ttl, query } => {
                if self.role == Role::Super {
                    self.pending_hops.insert(qid, (from.clone(), hops));
                }
                let msg = SearchMsg::Query { qid, ttl, hops, query };
                let acts = self.flood.on_message(from, msg, now);
                let out = self.route(acts);
                self.pending_hops.remove(&qid);
                out
            }
            other => {
                let acts = self.flood.on_message(from, other, now);
                self.route(acts)
            }
        }
    }

    /// Passes router actions through; on a supernode, a query it answers also goes to matching leaves.
    fn route(&mut self, actions: Vec<Action<P>>) -> Vec<SuperAction<P>> {
        let mut out = Vec::new();
        for a in actions {
            if let (Role::Super, Action::Answer { qid, query }) = (self.role, &a) {
                let (from, hops) = self.pending_hops.get(qid).cloned().map_or((None, 0), |(f, h)| (Some(f), h));
                for (leaf, digest) in &self.leaves {
                    if Some(leaf) != from.as_ref() && digest.as_ref().is_none_or(|d| d.matches(query)) {
                        let msg =
                            SearchMsg::Query { qid: *qid, ttl: 1, hops: hops.saturating_add(1), query: query.clone() };
                        out.push(SuperAction::Flood(Action::Send { to: leaf.clone(), msg }));
                    }
                }
            }
            out.push(SuperAction::Flood(a));
        }
        out
    }

    /// What the local index found for query `qid`.
    pub fn on_local_hits(&mut self, qid: u64, hits: Vec<Hit>, now: Instant) -> Vec<SuperAction<P>> {
        Self::wrap(self.flood.on_local_hits(qid, hits, now))
    }

    /// Starts a search: to our supernodes (leaf) or to the other supernodes and our matching leaves (supernode).
    pub fn start(
        &mut self,
        query: Query,
        limit: usize,
        timeout: Duration,
        now: Instant,
    ) -> (SearchId, Vec<SuperAction<P>>) {
        let (sid, acts) = self.flood.start(query.clone(), limit, timeout, now);
        let mut out = Self::wrap(acts);
        if self.role == Role::Super {
            // Our own leaves are one hop away: ask the matching ones directly.
            let leaves: Vec<P> = self
                .leaves
                .iter()
                .filter(|(_, d)| d.as_ref().is_none_or(|d| d.matches(&query)))
                .map(|(p, _)| p.clone())
                .collect();
            for l in leaves {
                out.extend(Self::wrap(self.flood.ask(sid, l)));
            }
        }
        (sid, out)
    }

    /// Ends search `sid` now.
    pub fn cancel(&mut self, sid: SearchId, now: Instant) -> Vec<SuperAction<P>> {
        Self::wrap(self.flood.cancel(sid, now))
    }

    /// Time passes: searches widen or end; a leaf attaches or promotes itself; a supernode links to others.
    pub fn poll(&mut self, now: Instant) -> Vec<SuperAction<P>> {
        let mut out = Self::wrap(self.flood.poll(now));
        if now.saturating_duration_since(self.last_gossip) >= self.cfg.gossip_every {
            self.last_gossip = now;
            if self.should_demote(now) {
                out.extend(self.demote(now));
                return out;
            }
            out.extend(self.roles_to_those_who_need_them());
        }
        let retry = self.cfg.retry_after;
        self.refused.retain(|_, at| now.saturating_duration_since(*at) < retry);
        // Attach requests without an answer count as refusals.
        let stale: Vec<P> = self
            .attaching
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) >= retry / 2)
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            self.attaching.remove(&p);
            self.refused.insert(p, now);
        }
        match self.role {
            Role::Leaf => {
                let homed = self.flood.neighbours().count();
                let have = homed + self.attaching.len();
                let mut want = self.cfg.supers_per_leaf.clamp(1, 3).saturating_sub(have);
                if homed > 0 && want > 0 {
                    // Not urgent: one more at a time, once per gossip period, so that leaves of a network
                    // short of supernode slots do not ask the full ones over and over.
                    let due = self.last_extra.is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.gossip_every);
                    want = usize::from(due);
                }
                let candidates = self.candidates(want, |me, p| !me.attaching.contains_key(p));
                let orphan = homed == 0;
                if orphan && self.orphan_since.is_none() {
                    self.orphan_since = Some(now);
                }
                // Eligible once orphaned for orphan_wait and up for min_uptime; then a random delay, so that
                // peers that become eligible together (a network starting) do not all promote at once.
                let eligible =
                    self.orphan_since.map(|t| (t + self.cfg.orphan_wait).max(self.started + self.cfg.min_uptime));
                let due = eligible.is_some_and(|e| now >= e + self.jitter);
                // Promote when there is no supernode left to ask, or when full ones keep refusing us: the
                // network is short of supernode slots. Without the second, an orphan that keeps finding
                // supernodes to ask never promotes (seen at 10,000 peers: 154 supernodes for 10,000 leaves,
                // most of them orphans asking forever).
                let nobody_to_ask = self.attaching.is_empty() && candidates.is_empty();
                let short = self.refusals >= REFUSALS_BEFORE_PROMOTING;
                if orphan && due && self.cfg.capable && (nobody_to_ask || short) {
                    self.role = Role::Super;
                    self.promoted_at = Some(now);
                    self.orphan_since = None;
                    self.refusals = 0;
                    // Answers still on their way would make us a leaf of someone: withdraw the requests.
                    for p in std::mem::take(&mut self.attaching).into_keys() {
                        out.push(SuperAction::Flood(Action::Send { to: p, msg: SearchMsg::Leave }));
                    }
                    out.push(SuperAction::Promoted);
                    out.extend(self.roles_to_all());
                    return out;
                }
                if homed > 0 && !candidates.is_empty() {
                    self.last_extra = Some(now);
                }
                for (p, addrs) in candidates {
                    self.attaching.insert(p.clone(), now);
                    if !self.up.contains(&p) && !addrs.is_empty() {
                        out.push(SuperAction::Dial { peer: p.clone(), addrs });
                    }
                    out.push(SuperAction::Flood(Action::Send { to: p, msg: SearchMsg::Attach }));
                }
            }
            Role::Super => {
                // Link to other supernodes we know, up to the degree.
                let candidates = self.candidates(2 * self.cfg.flood.degree, |me, p| !me.flood.is_joining(p));
                for (p, addrs) in candidates {
                    if !self.flood.wants_neighbours() {
                        break;
                    }
                    if !self.up.contains(&p) && !addrs.is_empty() {
                        out.push(SuperAction::Dial { peer: p.clone(), addrs });
                    }
                    let acts = self.flood.join(p.clone(), now);
                    if acts.is_empty() {
                        continue;
                    }
                    // If it never answers, try it again only after retry_after.
                    self.refused.insert(p, now);
                    out.extend(Self::wrap(acts));
                }
            }
        }
        out
    }

    /// Underused, well linked, settled, and the coin says so (see [`Config::demote_below`]).
    fn should_demote(&mut self, now: Instant) -> bool {
        let settled = self.promoted_at.is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.gossip_every * 3);
        let linked = self.flood.neighbours().count() * 2 >= self.cfg.flood.degree.max(1);
        if self.role != Role::Super
            || !settled
            || !linked
            || self.leaves.len() >= self.cfg.demote_below.min(self.cfg.max_leaves / 2)
        {
            return false;
        }
        self.rng.next_u64().is_multiple_of(4)
    }

    /// Steps down: our leaves and supernode links are told `Leave` (they re-home or re-link), everyone we
    /// are connected to hears our new role, and we look for supernodes of our own.
    fn demote(&mut self, now: Instant) -> Vec<SuperAction<P>> {
        let mut out = Vec::new();
        for leaf in std::mem::take(&mut self.leaves).into_keys() {
            out.push(SuperAction::Flood(Action::Send { to: leaf, msg: SearchMsg::Leave }));
        }
        let links: Vec<P> = self.flood.neighbours().cloned().collect();
        for p in links {
            out.extend(Self::wrap(self.flood.leave(&p)));
        }
        self.role = Role::Leaf;
        self.promoted_at = None;
        self.orphan_since = Some(now);
        self.refusals = 0;
        out.push(SuperAction::Demoted);
        out.extend(self.roles_to_all());
        out
    }

    /// When [`Supernode::poll`] next has something to do, at the latest.
    pub fn next_wakeup(&self, now: Instant) -> Instant {
        let soon = now + self.cfg.retry_after / 4;
        self.flood.next_wakeup().map_or(soon, |t| t.min(soon))
    }
}

#[cfg(test)]
mod tests;
