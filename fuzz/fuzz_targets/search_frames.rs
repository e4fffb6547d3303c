//! Feeds arbitrary bytes to the `/shoal/search/1` decoder and to a flooding router, as a hostile peer
//! would. Decoding must return an error or a message, never panic; whatever decodes and validates must
//! round-trip and must not make the router panic or forward beyond the TTL cap.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use shoal_proto::search::flood::{Action, Config, Flood};
use shoal_proto::search::messages::MAX_FRAME;
use shoal_proto::search::{MAX_TTL, SearchMsg};
use shoal_proto::wire;

fuzz_target!(|data: &[u8]| {
    let mut router: Flood<u8> = Flood::new(Config { degree: 3, ..Config::default() }, 7);
    let start = Instant::now();
    let mut rest = data;
    let mut step = 0u64;
    while !rest.is_empty() {
        let Ok((msg, used)) = wire::decode::<SearchMsg>(rest, MAX_FRAME) else { break };
        rest = &rest[used..];
        let again = wire::encode(&msg, MAX_FRAME).expect("a decoded message re-encodes");
        let (back, _) = wire::decode::<SearchMsg>(&again, MAX_FRAME).expect("and decodes again");
        assert_eq!(back, msg);
        if msg.validate().is_err() {
            continue;
        }
        step += 1;
        let now = start + Duration::from_millis(step);
        for a in router.on_message((step % 5) as u8, msg, now) {
            if let Action::Send { msg: SearchMsg::Query { ttl, hops, .. }, .. } = a {
                assert!(ttl.saturating_add(hops) <= MAX_TTL);
            }
        }
    }
    let _ = router.poll(start + Duration::from_secs(3600));
});
