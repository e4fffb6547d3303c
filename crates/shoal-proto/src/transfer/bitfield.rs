//! A fixed-size set of piece indices, one bit each.

/// A set of piece indices in `0..len`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitfield {
    words: Vec<u64>,
    len: u32,
    ones: u32,
}

impl Bitfield {
    /// An empty set over `len` pieces.
    pub fn new(len: u32) -> Self {
        Self { words: vec![0; (len as usize).div_ceil(64)], len, ones: 0 }
    }

    /// A full set over `len` pieces.
    pub fn full(len: u32) -> Self {
        let mut b = Self::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    /// Number of pieces the set ranges over.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when the set ranges over no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pieces in the set.
    pub fn count(&self) -> u32 {
        self.ones
    }

    /// True when every piece is in the set.
    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    /// Whether piece `i` is in the set (out of range: no).
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Adds piece `i`; returns true if it was not there before. Out of range is ignored.
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.words[(i / 64) as usize] |= 1 << (i % 64);
        self.ones += 1;
        true
    }

    /// Removes piece `i`; returns true if it was there.
    pub fn clear(&mut self, i: u32) -> bool {
        if !self.get(i) {
            return false;
        }
        self.words[(i / 64) as usize] &= !(1 << (i % 64));
        self.ones -= 1;
        true
    }

    /// The pieces in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }

    /// The pieces not in this set that are in `among` (every piece, when `among` is `None`), in increasing
    /// order starting at `start` and wrapping around. Words with nothing to yield are skipped whole: the
    /// piece picker runs this over a thousand pieces for every request it makes.
    pub fn missing<'a>(&'a self, among: Option<&'a Bitfield>, start: u32) -> Missing<'a> {
        let nwords = self.words.len();
        let start = if self.len == 0 { 0 } else { start % self.len };
        Missing {
            done: self,
            among,
            nwords,
            first: (start / 64) as usize,
            step: 0,
            bits: 0,
            base: 0,
            start_bit: start % 64,
        }
    }
}

/// Iterator of [`Bitfield::missing`].
#[derive(Debug)]
pub struct Missing<'a> {
    done: &'a Bitfield,
    among: Option<&'a Bitfield>,
    nwords: usize,
    first: usize,
    /// Words visited so far; the first word is visited twice (its upper bits first, its lower bits last).
    step: usize,
    bits: u64,
    base: u32,
    start_bit: u32,
}

impl Iterator for Missing<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        loop {
            if self.bits != 0 {
                let b = self.bits.trailing_zeros();
                self.bits &= self.bits - 1;
                return Some(self.base + b);
            }
            if self.nwords == 0 || self.step > self.nwords {
                return None;
            }
            let w = (self.first + self.step) % self.nwords;
            let lo = w as u32 * 64;
            let among = self.among.map_or(u64::MAX, |a| a.words.get(w).copied().unwrap_or(0));
            let mut m = among & !self.done.words[w];
            let valid = self.done.len - lo;
            if valid < 64 {
                m &= (1u64 << valid) - 1;
            }
            if self.step == 0 {
                m &= u64::MAX << self.start_bit;
            } else if self.step == self.nwords {
                m &= (1u64 << self.start_bit) - 1;
            }
            self.bits = m;
            self.base = lo;
            self.step += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_count() {
        let mut b = Bitfield::new(130);
        assert!(b.set(0) && b.set(129) && !b.set(129) && !b.set(130));
        assert_eq!(b.count(), 2);
        assert!(b.clear(0) && !b.clear(0));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![129]);
        assert!(Bitfield::full(130).is_full());
    }

    proptest::proptest! {
        /// `missing` yields exactly what a plain scan in the same rotated order would.
        #[test]
        fn missing_matches_a_plain_scan(
            len in 0u32..300,
            done_bits in proptest::collection::vec(proptest::prelude::any::<bool>(), 300),
            among_bits in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<bool>(), 300)),
            start in 0u32..400,
        ) {
            let mut done = Bitfield::new(len);
            let mut among = among_bits.as_ref().map(|_| Bitfield::new(len));
            for i in 0..len {
                if done_bits[i as usize] {
                    done.set(i);
                }
                if let (Some(a), Some(bits)) = (among.as_mut(), among_bits.as_ref())
                    && bits[i as usize]
                {
                    a.set(i);
                }
            }
            let s = if len == 0 { 0 } else { start % len };
            let expect: Vec<u32> = (0..len)
                .map(|k| (s + k) % len.max(1))
                .filter(|&i| !done.get(i) && among.as_ref().is_none_or(|a| a.get(i)))
                .collect();
            let got: Vec<u32> = done.missing(among.as_ref(), start).collect();
            proptest::prop_assert_eq!(got, expect);
        }
    }
}
