//! [`TopicLog`]: one topic's posts, in the order every peer shows them, and the gaps to refill.
//!
//! The order is (Lamport clock, id): a post's clock is one more than its highest parent's, so a post
//! always comes after everything its author had seen, and two peers holding the same posts show them in
//! the same order whatever order they arrived in. A post is *placed* (given its position) once all its
//! parents are placed; until then it *waits*, and the log asks for the missing ids ([`Action::Ask`]) every
//! [`LogConfig::ask_every`]. A post that has waited [`LogConfig::give_up_after`] is placed anyway and its
//! missing parents are recorded as a gap (the author may have been cut off, or a peer withheld them):
//! a lost post must not hide the ones after it for ever. Parents older than the oldest post kept (the
//! history window) are not asked for.
//!
//! Where the parents are known the clock is checked exactly, so an author cannot push its post to the end
//! of the order by claiming a large clock. Bounds: [`LogConfig::max_posts`] placed (the oldest in order
//! are forgotten first), [`LogConfig::max_waiting`] waiting, of which [`LogConfig::max_waiting_per_author`]
//! from one author (so a flood of orphans from one key cannot crowd out the others).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::post::{AuthorKey, Checked, Draft, MAX_PARENTS, MsgId, Post, TopicId};

/// Limits and timings of a [`TopicLog`].
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Posts placed and kept; beyond, the oldest in order are forgotten.
    pub max_posts: usize,
    /// Posts waiting for parents, over all authors.
    pub max_waiting: usize,
    /// Posts waiting for parents from one author.
    pub max_waiting_per_author: usize,
    /// A waiting post is placed after this long, with a gap where its missing parents would be.
    pub give_up_after: Duration,
    /// A missing id is asked for again after this long.
    pub ask_every: Duration,
    /// Ids asked for in one [`Action::Ask`], at most.
    pub max_ask: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            max_posts: 100_000,
            max_waiting: 4096,
            max_waiting_per_author: 256,
            give_up_after: Duration::from_secs(60),
            ask_every: Duration::from_secs(2),
            max_ask: 256,
        }
    }
}

/// What [`TopicLog::insert`] did with a post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Placed: these posts (the new one and any waiting ones it completed) now have their position, in
    /// the order they were placed.
    Placed(Vec<MsgId>),
    /// Held until these parents arrive (ask peers for them: [`TopicLog::poll`] says when).
    Waiting {
        /// The parents not placed yet.
        missing: Vec<MsgId>,
    },
    /// Already placed or waiting.
    Duplicate,
    /// Refused (see the reason); nothing changed.
    Refused(Refusal),
}

/// Why the log refused a post that passed [`Post::check`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Another topic's post.
    #[error("the post belongs to another topic")]
    WrongTopic,
    /// Its clock is not one more than its highest parent's.
    #[error("the post's clock {claimed} should be {expected} (one more than its highest parent's)")]
    WrongClock {
        /// The claimed clock.
        claimed: u64,
        /// What its parents give.
        expected: u64,
    },
    /// Too many posts are waiting, overall or from this author.
    #[error("too many posts wait for their parents ({from_author} from this author, {all} in all)")]
    TooManyWaiting {
        /// Waiting from this author.
        from_author: usize,
        /// Waiting in all.
        all: usize,
    },
}

/// What the driver should do, from [`TopicLog::poll`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ask peers that follow the topic for these posts.
    Ask(Vec<MsgId>),
    /// These waited too long and were placed without some parents (a gap before each).
    Placed(Vec<MsgId>),
}

/// A placed post.
#[derive(Clone, Debug)]
struct Kept {
    post: Post,
    /// Placed children, for the heads.
    children: u32,
    /// Parents that never arrived.
    gap: bool,
}

/// A post waiting for parents.
#[derive(Clone, Debug)]
struct Waiting {
    post: Post,
    missing: HashSet<MsgId>,
    since: Instant,
}

/// A missing parent: who waits for it, since when, and when it was last asked for.
#[derive(Clone, Debug)]
struct Wanted {
    children: Vec<MsgId>,
    since: Instant,
    asked: Option<Instant>,
}

/// One topic's posts. See the module docs.
#[derive(Clone, Debug)]
pub struct TopicLog {
    config: LogConfig,
    topic: TopicId,
    placed: HashMap<MsgId, Kept>,
    order: BTreeSet<(u64, MsgId)>,
    heads: BTreeSet<(u64, MsgId)>,
    waiting: HashMap<MsgId, Waiting>,
    waiting_by_author: HashMap<AuthorKey, usize>,
    wanted: HashMap<MsgId, Wanted>,
    /// Per author: placed posts and the highest sequence number among them.
    authors: HashMap<AuthorKey, (usize, u64)>,
    /// Posts placed without some parents, since the log was made.
    gaps: usize,
    /// The highest clock among posts forgotten by [`TopicLog::trim`] (0: none yet). A missing parent of a
    /// post with a clock at most one above it may be one of those: history, not a gap.
    forgotten: u64,
}

impl TopicLog {
    /// An empty log of `topic`.
    pub fn new(topic: TopicId, config: LogConfig) -> Self {
        Self {
            config,
            topic,
            placed: HashMap::new(),
            order: BTreeSet::new(),
            heads: BTreeSet::new(),
            waiting: HashMap::new(),
            waiting_by_author: HashMap::new(),
            wanted: HashMap::new(),
            authors: HashMap::new(),
            gaps: 0,
            forgotten: 0,
        }
    }

    /// The topic.
    pub fn topic(&self) -> TopicId {
        self.topic
    }

    /// Takes a checked post.
    pub fn insert(&mut self, post: Checked, now: Instant) -> Insert {
        let id = post.id();
        let post = post.into_post();
        let c = &post.content;
        if c.topic != self.topic {
            return Insert::Refused(Refusal::WrongTopic);
        }
        if self.placed.contains_key(&id) || self.waiting.contains_key(&id) {
            return Insert::Duplicate;
        }
        let mut missing = HashSet::new();
        let mut highest = 0;
        for p in &c.parents {
            match self.placed.get(p) {
                Some(k) => highest = highest.max(k.post.content.clock),
                // Older than anything kept: history we no longer hold, not a gap to fill.
                None if self.forgotten > 0 && c.clock <= self.forgotten.saturating_add(1) => {}
                None => {
                    missing.insert(*p);
                }
            }
        }
        if missing.is_empty() && c.parents.iter().all(|p| self.placed.contains_key(p)) {
            let expected = highest + 1;
            if c.clock != expected {
                return Insert::Refused(Refusal::WrongClock { claimed: c.clock, expected });
            }
        } else if c.clock <= highest {
            return Insert::Refused(Refusal::WrongClock { claimed: c.clock, expected: highest + 1 });
        }
        if missing.is_empty() {
            let mut placed = Vec::new();
            self.place(id, post, false, &mut placed);
            self.trim();
            return Insert::Placed(placed);
        }
        let from_author = self.waiting_by_author.get(&c.author).copied().unwrap_or(0);
        if from_author >= self.config.max_waiting_per_author || self.waiting.len() >= self.config.max_waiting {
            return Insert::Refused(Refusal::TooManyWaiting { from_author, all: self.waiting.len() });
        }
        *self.waiting_by_author.entry(c.author).or_default() += 1;
        for p in &missing {
            self.wanted
                .entry(*p)
                .or_insert_with(|| Wanted { children: Vec::new(), since: now, asked: None })
                .children
                .push(id);
        }
        let mut list: Vec<MsgId> = missing.iter().copied().collect();
        list.sort_unstable();
        self.waiting.insert(id, Waiting { post, missing, since: now });
        Insert::Waiting { missing: list }
    }

    /// Ids to ask for now, and waiting posts placed because they waited too long.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut late: Vec<(u64, MsgId)> = self
            .waiting
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.since) >= self.config.give_up_after)
            .map(|(id, w)| (w.post.content.clock, *id))
            .collect();
        late.sort_unstable();
        let mut placed = Vec::new();
        for (_, id) in late {
            // An earlier one in this loop may have completed it already.
            if let Some(w) = self.take_waiting(&id) {
                self.gaps += 1;
                self.place(id, w.post, true, &mut placed);
            }
        }
        if !placed.is_empty() {
            self.trim();
            actions.push(Action::Placed(placed));
        }
        let mut ask: Vec<MsgId> = Vec::new();
        for (id, w) in &mut self.wanted {
            if ask.len() >= self.config.max_ask {
                break;
            }
            if w.asked.is_none_or(|t| now.saturating_duration_since(t) >= self.config.ask_every) {
                w.asked = Some(now);
                ask.push(*id);
            }
        }
        if !ask.is_empty() {
            ask.sort_unstable();
            actions.push(Action::Ask(ask));
        }
        actions
    }

    /// When [`TopicLog::poll`] has something to do next, if anything waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let give_up = self.waiting.values().map(|w| w.since + self.config.give_up_after).min();
        let ask = self.wanted.values().map(|w| w.asked.map_or(w.since, |t| t + self.config.ask_every)).min();
        match (give_up, ask) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What a new post by `author` should say: its sequence number, clock and parents (the heads, the
    /// highest clocks first if there are more than a post may name).
    pub fn draft(&self, author: &AuthorKey, time_ms: u64, text: String) -> Draft {
        let seq = self.authors.get(author).map_or(0, |(_, s)| *s) + 1;
        let parents: Vec<MsgId> = self.heads.iter().rev().take(MAX_PARENTS).map(|(_, id)| *id).collect();
        let clock =
            parents.iter().filter_map(|p| self.placed.get(p)).map(|k| k.post.content.clock).max().unwrap_or(0) + 1;
        Draft { topic: self.topic, seq, clock, time_ms, parents, text }
    }

    /// Placed posts in the shared order, each with whether a gap precedes it (parents that never came).
    pub fn ordered(&self) -> impl Iterator<Item = (&MsgId, &Post, bool)> {
        self.order.iter().filter_map(|(_, id)| self.placed.get(id).map(|k| (id, &k.post, k.gap)))
    }

    /// (time, id) of every post held, placed or waiting, dated `since_ms` or later: what a refill
    /// session ([`super::refill`]) reconciles.
    pub fn items_since(&self, since_ms: u64) -> Vec<(u64, MsgId)> {
        let placed = self.placed.iter().map(|(id, k)| (k.post.content.time_ms, *id));
        let waiting = self.waiting.iter().map(|(id, w)| (w.post.content.time_ms, *id));
        placed.chain(waiting).filter(|(t, _)| *t >= since_ms).collect()
    }

    /// A placed post.
    pub fn get(&self, id: &MsgId) -> Option<&Post> {
        self.placed.get(id).map(|k| &k.post)
    }

    /// Whether `id` is placed or waiting.
    pub fn has(&self, id: &MsgId) -> bool {
        self.placed.contains_key(id) || self.waiting.contains_key(id)
    }

    /// Placed posts.
    pub fn len(&self) -> usize {
        self.placed.len()
    }

    /// Whether nothing is placed.
    pub fn is_empty(&self) -> bool {
        self.placed.is_empty()
    }

    /// Posts waiting for parents.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Posts placed without some of their parents, since the log was made.
    pub fn gaps(&self) -> usize {
        self.gaps
    }

    /// The heads: placed posts no placed post names as a parent.
    pub fn heads(&self) -> Vec<MsgId> {
        self.heads.iter().map(|(_, id)| *id).collect()
    }

    fn take_waiting(&mut self, id: &MsgId) -> Option<Waiting> {
        let w = self.waiting.remove(id)?;
        if let Some(n) = self.waiting_by_author.get_mut(&w.post.content.author) {
            *n -= 1;
            if *n == 0 {
                self.waiting_by_author.remove(&w.post.content.author);
            }
        }
        for p in &w.missing {
            if let Some(want) = self.wanted.get_mut(p) {
                want.children.retain(|c| c != id);
                if want.children.is_empty() {
                    self.wanted.remove(p);
                }
            }
        }
        Some(w)
    }

    /// Places `id`, then every waiting post it completes, appending each to `out`.
    fn place(&mut self, id: MsgId, post: Post, gap: bool, out: &mut Vec<MsgId>) {
        let mut todo = vec![(id, post, gap)];
        while let Some((id, post, gap)) = todo.pop() {
            let c = &post.content;
            for p in &c.parents {
                if let Some(k) = self.placed.get_mut(p) {
                    if k.children == 0 {
                        self.heads.remove(&(k.post.content.clock, *p));
                    }
                    k.children += 1;
                }
            }
            let a = self.authors.entry(c.author).or_default();
            a.0 += 1;
            a.1 = a.1.max(c.seq);
            self.order.insert((c.clock, id));
            self.heads.insert((c.clock, id));
            self.placed.insert(id, Kept { post, children: 0, gap });
            out.push(id);
            // Waiting children of this post: place those it completes (their clock checked now).
            let Some(want) = self.wanted.remove(&id) else { continue };
            for child in want.children {
                let Some(w) = self.waiting.get_mut(&child) else { continue };
                w.missing.remove(&id);
                if !w.missing.is_empty() {
                    continue;
                }
                let Some(w) = self.take_waiting(&child) else { continue };
                let expected = w
                    .post
                    .content
                    .parents
                    .iter()
                    .filter_map(|p| self.placed.get(p))
                    .map(|k| k.post.content.clock)
                    .max()
                    .unwrap_or(0)
                    + 1;
                // A child whose clock its parents contradict is dropped, as it would have been had its
                // parents come first.
                if w.post.content.clock == expected {
                    todo.push((child, w.post, false));
                }
            }
        }
    }

    /// Forgets the oldest posts beyond the limit.
    fn trim(&mut self) {
        while self.placed.len() > self.config.max_posts {
            let Some((clock, id)) = self.order.pop_first() else { break };
            self.forgotten = self.forgotten.max(clock);
            self.heads.remove(&(clock, id));
            if let Some(k) = self.placed.remove(&id) {
                let author = k.post.content.author;
                if let Some(a) = self.authors.get_mut(&author) {
                    a.0 -= 1;
                    if a.0 == 0 {
                        self.authors.remove(&author);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
