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
}
