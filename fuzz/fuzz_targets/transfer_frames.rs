//! Feeds arbitrary bytes to the `/shoal/transfer/1` frame decoder, as a hostile peer would. It must return
//! an error or a message, never panic, and never allocate past the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::transfer::messages::MAX_FRAME;
use shoal_proto::transfer::{Request, Response};
use shoal_proto::wire;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // A stream is a sequence of frames: decode until the bytes run out or one is rejected.
    while !rest.is_empty() {
        match wire::decode::<Request>(rest, MAX_FRAME) {
            Ok((req, used)) => {
                // What decodes must survive a round trip unchanged.
                let again = wire::encode(&req, MAX_FRAME).expect("a decoded request re-encodes");
                let (back, _) = wire::decode::<Request>(&again, MAX_FRAME).expect("and decodes again");
                assert_eq!(back, req);
                rest = &rest[used..];
            }
            Err(_) => break,
        }
    }
    let _ = wire::decode::<Response>(data, MAX_FRAME);
});
