//! Helpers shared by Shoal's tests: deterministic data, and [`hostile::Hostile`], a real peer that attacks.
//! Only ever a dev-dependency.

pub mod hostile;

/// `n` pseudo-random bytes from `seed` (splitmix64): incompressible enough for transfer tests, and the same
/// on every run so that a failure reproduces.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = shoal_proto::rng::SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_seed_dependent() {
        assert_eq!(super::random_bytes(100, 1), super::random_bytes(100, 1));
        assert_ne!(super::random_bytes(100, 1), super::random_bytes(100, 2));
        assert_eq!(super::random_bytes(13, 5).len(), 13);
    }
}
