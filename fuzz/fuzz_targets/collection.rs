//! Arbitrary bytes as a collection blob: decoding must never panic, and whatever it accepts must only hold
//! names that stay inside the output directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_store::Collection;
use std::path::Component;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Collection::decode(data) {
        for e in &c.entries {
            let p = shoal_store::collection::safe_relative_path(&e.path).expect("accepted names are safe");
            assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
        }
    }
});
