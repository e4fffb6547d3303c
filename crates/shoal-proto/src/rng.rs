//! Randomness for the protocol cores, in two kinds that must not be confused.
//!
//! - [`SplitMix64`]: a small seeded generator for choices that only need to be spread well (tie-breaks,
//!   jitter, coins, the simulator's events). The same seed gives the same sequence, so simulator runs and
//!   failing tests replay. One output reveals the state: never use it for anything a peer must not guess.
//! - [`Secret`] and [`SecretIds`]: ids a remote peer must not predict (search query ids: a neighbour that
//!   could guess our next ids could pre-send them and have our queries dropped as duplicates). Each id is a
//!   keyed BLAKE3 hash of a counter, so seeing any number of ids says nothing about the next one. The node
//!   takes the key from the operating system's generator; the simulator derives it from its seed.
//!
//! The cores never read a clock or an OS generator themselves (they are sans-IO): whoever drives them
//! passes the key in.

/// splitmix64 (Steele, Lea, Flood 2014): fast, well spread, and the same sequence for the same seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

/// splitmix64's output function: a well-spread 64-bit hash of one word.
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A symmetric hash of an unordered pair: the same for `(a, b)` and `(b, a)` (one latency per link).
pub const fn pair_hash(a: u64, b: u64) -> u64 {
    let (x, y) = if a < b { (a, b) } else { (b, a) };
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ y.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)).rotate_left(17)
}

impl SplitMix64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A generator whose state starts at `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        mix64(self.0)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 256 secret bits: the key behind [`SecretIds`].
#[derive(Clone)]
pub struct Secret(pub [u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<u64> for Secret {
    /// A key derived from a 64-bit seed, for the simulator and tests, where runs must replay. A node uses a
    /// key from the OS generator instead.
    fn from(seed: u64) -> Self {
        Self(blake3::derive_key("shoal 2026 secret from seed", &seed.to_le_bytes()))
    }
}

impl Secret {
    /// 64 bits that stand for this key where a plain seed is wanted (tie-breaks, jitter): not secret.
    pub fn seed(&self) -> u64 {
        let b = blake3::derive_key("shoal 2026 public seed", &self.0);
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

/// Unpredictable 64-bit ids: `BLAKE3-keyed(key, counter)`.
#[derive(Clone, Debug)]
pub struct SecretIds {
    key: Secret,
    counter: u64,
}

impl SecretIds {
    /// Ids under `key`.
    pub fn new(key: Secret) -> Self {
        Self { key, counter: 0 }
    }

    /// The next id.
    pub fn next_id(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        let h = blake3::keyed_hash(&self.key.0, &self.counter.to_le_bytes());
        let b = h.as_bytes();
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_replays_and_spreads() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..100).map(|_| b.next_u64()).collect::<Vec<_>>());
        let mut c = SplitMix64::new(8);
        assert_ne!(xs[0], c.next_u64());
        // Rough uniformity: each of 10 buckets gets 5-15% of 10,000 draws.
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            buckets[a.below(10)] += 1;
        }
        assert!(buckets.iter().all(|&n| (500..1500).contains(&n)), "{buckets:?}");
        assert_eq!(a.below(0), 0);
        let u = a.unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn pair_hash_is_symmetric() {
        assert_eq!(pair_hash(3, 9), pair_hash(9, 3));
        assert_ne!(pair_hash(3, 9), pair_hash(3, 10));
    }

    #[test]
    fn secret_ids_differ_by_key_and_do_not_repeat() {
        let mut a = SecretIds::new(Secret([1; 32]));
        let mut b = SecretIds::new(Secret([2; 32]));
        let xs: Vec<u64> = (0..1000).map(|_| a.next_id()).collect();
        let set: std::collections::HashSet<_> = xs.iter().collect();
        assert_eq!(set.len(), xs.len());
        assert_ne!(xs[0], b.next_id());
        // A key derived from a seed replays.
        let mut c = SecretIds::new(Secret::from(5));
        let mut d = SecretIds::new(Secret::from(5));
        assert_eq!(c.next_id(), d.next_id());
    }
}
