//! Feeds arbitrary bytes to the sealed-letter decoder and opens whatever decodes, as a hostile holder or
//! relay would. Decoding and opening must return an error or a letter, never panic; nothing a fuzzer
//! writes opens (it would need the recipient's key or the sender's signature); a decoded letter
//! round-trips.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use shoal_proto::messaging::direct::{MAX_SEALED_FRAME, Receipt, Sealed};
use shoal_proto::wire;

fuzz_target!(|data: &[u8]| {
    let me = SigningKey::from_bytes(&[2; 32]);
    let mut rest = data;
    while !rest.is_empty() {
        let Ok((sealed, used)) = wire::decode::<Sealed>(rest, MAX_SEALED_FRAME) else { break };
        rest = &rest[used..];
        let again = sealed.encode().expect("a decoded letter re-encodes");
        assert_eq!(Sealed::decode(&again).expect("and decodes again"), sealed);
        assert!(sealed.open(&me, u64::MAX / 2).is_err(), "a letter nobody sealed opened");
    }
    if let Ok((receipt, _)) = wire::decode::<Receipt>(data, 256) {
        assert!(!receipt.is_from(&me.verifying_key().to_bytes()), "a receipt nobody signed was taken");
    }
});
