//! Tests of [`super::TopicLog`]: order, waiting and asking, gaps, clock checks, bounds, and a property
//! test over random histories with concurrent posts.

use super::super::test_keys::key;
use super::*;
use proptest::prelude::*;

fn topic() -> TopicId {
    TopicId::public("test").unwrap()
}

/// `author` posts `text` on top of what `log` holds; the post goes into `log` too.
fn say(log: &mut TopicLog, author: u8, text: &str, now: Instant) -> Checked {
    let k = key(author);
    let d = log.draft(&k.verifying_key().to_bytes(), 1_000, text.into());
    let p = Post::sign(&k, d).unwrap();
    assert!(matches!(log.insert(p.clone(), now), Insert::Placed(_)));
    p
}

fn texts(log: &TopicLog) -> Vec<String> {
    log.ordered().map(|(_, p, _)| p.text(None).unwrap()).collect()
}

#[test]
fn a_reply_comes_after_what_it_answers_and_heads_follow() {
    let now = Instant::now();
    let mut log = TopicLog::new(topic(), LogConfig::default());
    let a = say(&mut log, 1, "hello", now);
    assert_eq!(log.heads(), vec![a.id()]);
    let b = say(&mut log, 2, "hi alice", now);
    assert_eq!(b.post().content.parents, vec![a.id()]);
    assert_eq!(b.post().content.clock, 2);
    assert_eq!(log.heads(), vec![b.id()]);
    assert_eq!(texts(&log), ["hello", "hi alice"]);
    let d = log.draft(&key(1).verifying_key().to_bytes(), 2_000, "x".into());
    assert_eq!(d.seq, 2, "alice's second post");
}

#[test]
fn a_post_waits_for_its_parent_asks_for_it_and_is_placed_when_it_comes() {
    let now = Instant::now();
    let mut full = TopicLog::new(topic(), LogConfig::default());
    let a = say(&mut full, 1, "first", now);
    let b = say(&mut full, 2, "second", now);
    let mut late = TopicLog::new(topic(), LogConfig::default());
    assert_eq!(late.insert(b.clone(), now), Insert::Waiting { missing: vec![a.id()] });
    assert!(late.is_empty());
    assert_eq!(late.poll(now), vec![Action::Ask(vec![a.id()])]);
    assert_eq!(late.poll(now + Duration::from_millis(100)), vec![], "not asked again at once");
    assert_eq!(late.poll(now + Duration::from_secs(3)), vec![Action::Ask(vec![a.id()])]);
    assert_eq!(late.insert(a.clone(), now), Insert::Placed(vec![a.id(), b.id()]));
    assert_eq!(texts(&late), ["first", "second"]);
    assert_eq!(late.waiting(), 0);
    assert_eq!(late.poll(now + Duration::from_secs(9)), vec![]);
    assert_eq!(late.items_since(0).len(), 2);
    assert_eq!(late.items_since(1_001), vec![]);
}

#[test]
fn a_parent_that_never_comes_leaves_a_gap_not_a_hidden_post() {
    let now = Instant::now();
    let mut full = TopicLog::new(topic(), LogConfig::default());
    say(&mut full, 1, "lost", now);
    let b = say(&mut full, 2, "kept", now);
    let mut log = TopicLog::new(topic(), LogConfig::default());
    log.insert(b.clone(), now);
    let later = now + LogConfig::default().give_up_after;
    assert_eq!(log.poll(later), vec![Action::Placed(vec![b.id()])]);
    let shown: Vec<bool> = log.ordered().map(|(_, _, gap)| gap).collect();
    assert_eq!(shown, vec![true]);
    assert_eq!(log.gaps(), 1);
    assert_eq!(log.poll(later + Duration::from_secs(5)), vec![], "nothing more is asked for");
}

#[test]
fn a_clock_its_parents_contradict_is_refused() {
    let now = Instant::now();
    let mut log = TopicLog::new(topic(), LogConfig::default());
    let a = say(&mut log, 1, "hello", now);
    let k = key(2);
    let mut d = log.draft(&k.verifying_key().to_bytes(), 1_000, "me last, always".into());
    d.clock = 1_000_000;
    let lie = Post::sign(&k, d).unwrap();
    assert_eq!(log.insert(lie, now), Insert::Refused(Refusal::WrongClock { claimed: 1_000_000, expected: 2 }));
    assert_eq!(log.len(), 1);
    // Waiting first, then its parent arrives: the lie is dropped then.
    let mut other = TopicLog::new(topic(), LogConfig::default());
    let mut d = log.draft(&k.verifying_key().to_bytes(), 1_000, "later lie".into());
    d.clock = 50;
    let lie = Post::sign(&k, d).unwrap();
    assert!(matches!(other.insert(lie.clone(), now), Insert::Waiting { .. }));
    assert_eq!(other.insert(a.clone(), now), Insert::Placed(vec![a.id()]));
    assert!(!other.has(&lie.id()));
    assert_eq!(other.waiting(), 0);
}

#[test]
fn orphans_from_one_author_cannot_fill_the_waiting_room() {
    let now = Instant::now();
    let config = LogConfig { max_waiting: 10, max_waiting_per_author: 3, ..LogConfig::default() };
    let mut log = TopicLog::new(topic(), config);
    let orphan = |author: u8, n: u8| {
        let d = Draft { topic: topic(), seq: 1, clock: 2, time_ms: 0, parents: vec![[n; 32]], text: format!("{n}") };
        Post::sign(&key(author), d).unwrap()
    };
    for n in 0..3 {
        assert!(matches!(log.insert(orphan(9, n), now), Insert::Waiting { .. }));
    }
    assert!(matches!(log.insert(orphan(9, 3), now), Insert::Refused(Refusal::TooManyWaiting { .. })));
    assert!(matches!(log.insert(orphan(1, 4), now), Insert::Waiting { .. }), "others still get in");
    assert_eq!(log.insert(orphan(1, 4), now), Insert::Duplicate);
    assert_eq!(log.waiting(), 4);
    let foreign = Post::sign(
        &key(1),
        Draft {
            topic: TopicId::public("other").unwrap(),
            seq: 1,
            clock: 1,
            time_ms: 0,
            parents: vec![],
            text: "x".into(),
        },
    )
    .unwrap();
    assert_eq!(log.insert(foreign, now), Insert::Refused(Refusal::WrongTopic));
}

#[test]
fn the_oldest_posts_are_forgotten_beyond_the_limit() {
    let now = Instant::now();
    let mut log = TopicLog::new(topic(), LogConfig { max_posts: 5, ..LogConfig::default() });
    for i in 0..8 {
        say(&mut log, (i % 3) as u8, &format!("{i}"), now);
    }
    assert_eq!(texts(&log), ["3", "4", "5", "6", "7"]);
    // A late reply to a forgotten post is placed, not held for a parent nobody keeps.
    let mut full = TopicLog::new(topic(), LogConfig::default());
    let old = say(&mut full, 1, "old", now);
    let chain: Vec<Checked> = (0..3).map(|i| say(&mut full, 2, &format!("{i}"), now)).collect();
    let mut small = TopicLog::new(topic(), LogConfig { max_posts: 3, ..LogConfig::default() });
    small.insert(old.clone(), now);
    for p in &chain {
        small.insert(p.clone(), now);
    }
    assert!(!small.has(&old.id()));
    let k = key(3);
    let d = Draft { topic: topic(), seq: 1, clock: 2, time_ms: 0, parents: vec![old.id()], text: "late".into() };
    let late = Post::sign(&k, d).unwrap();
    assert!(matches!(small.insert(late, now), Insert::Placed(_)));
    assert_eq!(small.waiting(), 0);
}

/// Three authors post on top of what each has seen, with messages crossing (each sees the others'
/// posts only now and then): a random history with concurrent posts.
fn history(script: &[(u8, bool)]) -> Vec<Checked> {
    let now = Instant::now();
    let mut views: Vec<TopicLog> = (0..3).map(|_| TopicLog::new(topic(), LogConfig::default())).collect();
    let mut all: Vec<Checked> = Vec::new();
    for (i, &(who, sync)) in script.iter().enumerate() {
        let w = (who % 3) as usize;
        if sync {
            for p in &all {
                views[w].insert(p.clone(), now);
            }
        }
        let k = key(w as u8 + 1);
        let d = views[w].draft(&k.verifying_key().to_bytes(), i as u64, format!("{w}:{i}"));
        let p = Post::sign(&k, d).unwrap();
        views[w].insert(p.clone(), now);
        all.push(p);
    }
    all
}

proptest! {
    #[test]
    fn every_arrival_order_gives_the_same_order_and_it_respects_replies(
        script in proptest::collection::vec((0u8..3, any::<bool>()), 1..40),
        seed in any::<u64>(),
    ) {
        let posts = history(&script);
        let now = Instant::now();
        let mut in_order = TopicLog::new(topic(), LogConfig::default());
        for p in &posts {
            prop_assert!(matches!(in_order.insert(p.clone(), now), Insert::Placed(_)));
        }
        let mut shuffled = posts.clone();
        let mut rng = crate::rng::SplitMix64::new(seed);
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i + 1));
        }
        let mut any_order = TopicLog::new(topic(), LogConfig::default());
        for p in &shuffled {
            any_order.insert(p.clone(), now);
        }
        prop_assert_eq!(any_order.waiting(), 0);
        prop_assert_eq!(texts(&any_order), texts(&in_order));
        prop_assert_eq!(any_order.heads(), in_order.heads());
        let at: HashMap<MsgId, usize> = in_order.ordered().enumerate().map(|(i, (id, _, _))| (*id, i)).collect();
        for (id, post, gap) in in_order.ordered() {
            prop_assert!(!gap);
            for parent in &post.content.parents {
                prop_assert!(at[parent] < at[id], "a post shown before its parent");
            }
        }
    }
}
