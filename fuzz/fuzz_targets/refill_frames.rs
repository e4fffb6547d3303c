//! Feeds arbitrary bytes to a topic refill responder and initiator, as a hostile peer would: decoding and
//! reconciling must return an error or an answer, never panic, and a session never goes past its rounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::messaging::TopicId;
use shoal_proto::messaging::refill::{Initiator, MAX_REFILL_FRAME, MAX_ROUNDS, RefillMsg, Responder};
use shoal_proto::wire;

fuzz_target!(|data: &[u8]| {
    let Ok(topic) = TopicId::public("fuzz") else { return };
    let items: Vec<(u64, [u8; 32])> = (0u32..200).map(|n| (u64::from(n) * 3, *blake3::hash(&n.to_le_bytes()).as_bytes())).collect();
    let Ok(mut responder) = Responder::new(topic, items.iter().copied()) else { return };
    let Ok((mut initiator, _)) = Initiator::start(topic, items.iter().copied().skip(7)) else { return };
    let mut rest = data;
    while !rest.is_empty() {
        let Ok((msg, used)) = wire::decode::<RefillMsg>(rest, MAX_REFILL_FRAME) else { break };
        rest = &rest[used..];
        assert!(msg.round < MAX_ROUNDS || responder.answer(&msg).is_err());
        if msg.round % 2 == 0 {
            let _ = responder.answer(&msg);
        } else {
            let _ = initiator.step(&msg);
        }
    }
});
