//! Feeds arbitrary bytes to the messaging stream decoder, as a hostile peer would: it returns a frame or
//! an error, never panics, and a frame it accepts keeps its bounds and encodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_proto::messaging::exchange::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        let again = frame.encode().expect("a decoded frame keeps its bounds");
        assert_eq!(Frame::decode(&again).expect("its encoding decodes"), frame);
    }
});
