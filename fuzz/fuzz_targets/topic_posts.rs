//! Feeds arbitrary bytes to the topic post decoder and a topic log, as a hostile peer on gossipsub would.
//! Decoding must return an error or a post, never panic; a decoded post round-trips;
//! opening its text never panics, nothing unsigned passes `check`, and the log stays within its bounds whatever it is fed.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use shoal_proto::messaging::group::GroupKey;
use shoal_proto::messaging::post::MAX_POST_FRAME;
use shoal_proto::messaging::{LogConfig, Post, TopicId, TopicLog};
use shoal_proto::wire;

fuzz_target!(|data: &[u8]| {
    let Ok(topic) = TopicId::public("fuzz") else { return };
    let config = LogConfig { max_waiting: 8, max_waiting_per_author: 2, ..LogConfig::default() };
    let mut log = TopicLog::new(topic, config);
    let start = Instant::now();
    let mut rest = data;
    let mut step = 0u64;
    while !rest.is_empty() {
        let Ok((post, used)) = wire::decode::<Post>(rest, MAX_POST_FRAME) else { break };
        rest = &rest[used..];
        // Values, not bytes: ids and signatures cover the re-encoded content, so a non-canonical varint on
        // the wire cannot change what was signed.
        let again = post.encode().expect("a decoded post re-encodes");
        assert_eq!(Post::decode(&again).expect("and decodes again"), post);
        // Opening a body, sealed or not, with a key or without, is an answer, never a panic.
        let _ = post.text(None);
        let _ = post.text(Some(&GroupKey::from_bytes([7; 32])));
        step += 1;
        let now = start + Duration::from_secs(step);
        if let Ok(checked) = post.check(u64::MAX / 2) {
            let _ = log.insert(checked, now);
        }
        let _ = log.poll(now);
        assert!(log.waiting() <= 8);
    }
});
