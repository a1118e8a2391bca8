//! A frozen u64 -> u64 hash map tuned for lookups whose outcome the CPU cannot predict:
//! open addressing over 64-byte buckets of four slots (one cache line: four keys, then
//! their four values), about half full, backed by 2 MiB pages when large
//! ([`crate::error::try_filled`]). A lookup reads
//! its home bucket, selects the match without branching, and moves on to the next bucket
//! only when the home bucket is full and holds no match, which is rare. Used for the trie
//! edges and for the vocabulary of text corpora.

use crate::error::{try_filled, Result};

/// The reserved key marking empty slots; callers never use it as a key.
pub const EMPTY: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    keys: [u64; 4],
    vals: [u64; 4],
}

#[derive(Debug, Clone, Default)]
pub struct BucketMap {
    buckets: Vec<Bucket>,
    shift: u32,
    /// returned for absent keys
    absent: u64,
}

/// Hint the CPU to bring `p`'s cache line in; a no-op off x86-64.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint and never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl BucketMap {
    /// Build from distinct keys (none equal to [`EMPTY`]); absent keys map to `absent`.
    pub fn build(items: &[(u64, u64)], absent: u64) -> Result<BucketMap> {
        let n_buckets = items.len().div_ceil(2).max(2).next_power_of_two();
        let mut buckets =
            try_filled("an n-gram lookup table", n_buckets, Bucket { keys: [EMPTY; 4], vals: [absent; 4] })?;
        let shift = 64 - n_buckets.trailing_zeros();
        let mask = n_buckets - 1;
        for &(k, v) in items {
            debug_assert!(k != EMPTY);
            let mut b = Self::home(k, shift);
            loop {
                // slots fill in order: a bucket with room has its last slot empty
                if let Some(s) = buckets[b].keys.iter().position(|&x| x == EMPTY) {
                    buckets[b].keys[s] = k;
                    buckets[b].vals[s] = v;
                    break;
                }
                b = (b + 1) & mask;
            }
        }
        Ok(BucketMap { buckets, shift, absent })
    }

    #[inline(always)]
    fn home(k: u64, shift: u32) -> usize {
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
    }

    /// Start loading the bucket [`BucketMap::get`] will read first for `k`.
    #[inline(always)]
    pub fn prefetch(&self, k: u64) {
        if let Some(b) = self.buckets.get(Self::home(k, self.shift)) {
            prefetch(b);
        }
    }

    #[inline(always)]
    pub fn get(&self, k: u64) -> u64 {
        if self.buckets.is_empty() {
            return self.absent;
        }
        let mask = self.buckets.len() - 1;
        let mut b = Self::home(k, self.shift);
        loop {
            let bk = &self.buckets[b];
            // selects, not branches: whether the key is here is a coin flip for the CPU
            let mut found = self.absent;
            for s in 0..4 {
                found = std::hint::select_unpredictable(bk.keys[s] == k, bk.vals[s], found);
            }
            // the common case exits on one well-predicted test
            if bk.keys[3] == EMPTY || found != self.absent {
                return found;
            }
            b = (b + 1) & mask;
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_buckets_and_absent_keys() {
        // every key has the same home bucket's neighbourhood: chains across buckets
        let items: Vec<(u64, u64)> = (0..1000u64).map(|i| (i * 7919, i + 1)).collect();
        let m = BucketMap::build(&items, 0).unwrap();
        for &(k, v) in &items {
            assert_eq!(m.get(k), v);
        }
        for k in 1000..3000u64 {
            if k % 7919 != 0 {
                assert_eq!(m.get(k), 0);
            }
        }
        let e = BucketMap::build(&[], 5).unwrap();
        assert_eq!(e.get(3), 5);
        // a tiny table that is full everywhere but one slot
        let items: Vec<(u64, u64)> = (0..4u64).map(|i| (i, i + 10)).collect();
        let m = BucketMap::build(&items, 0).unwrap();
        assert!((0..4).all(|i| m.get(i) == i + 10) && m.get(99) == 0);
    }
}
