//! Bounded top-k selection: a binary max-heap of the `k` smallest `(score, index)` pairs.
//!
//! Order is lexicographic on `(score, index)`, so among equal scores the lower index wins
//! and results are deterministic. The heap's root is the current k-th best: a candidate
//! that does not beat it is rejected with one comparison, which is what almost every
//! candidate does once the heap is full.

/// `(a_score, a_index)` ranks after (is worse than) `(b_score, b_index)`.
#[inline(always)]
fn worse(a: f32, ai: i64, b: f32, bi: i64) -> bool {
    a > b || (a == b && ai > bi)
}

use crate::cpu::VectorLevel;

/// A max-heap over `k` slots stored in caller-owned slices (one heap per query row).
pub(crate) struct Heap<'a> {
    score: &'a mut [f32],
    index: &'a mut [i64],
    len: usize,
}

impl<'a> Heap<'a> {
    /// An empty heap of capacity `score.len()` (== `index.len()`).
    pub(crate) fn new(score: &'a mut [f32], index: &'a mut [i64], len: usize) -> Self {
        debug_assert_eq!(score.len(), index.len());
        Heap { score, index, len }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The score a candidate must beat (strictly) to enter: +inf while not full.
    #[inline(always)]
    pub(crate) fn threshold(&self) -> f32 {
        if self.len < self.score.len() {
            f32::INFINITY
        } else {
            self.score[0]
        }
    }

    /// Offer a candidate; kept if the heap is not full or it ranks before the root.
    #[inline]
    pub(crate) fn push(&mut self, s: f32, i: i64) {
        let cap = self.score.len();
        if self.len < cap {
            // sift up from the new leaf
            let mut pos = self.len;
            self.len += 1;
            while pos > 0 {
                let parent = (pos - 1) / 2;
                if !worse(s, i, self.score[parent], self.index[parent]) {
                    break;
                }
                self.score[pos] = self.score[parent];
                self.index[pos] = self.index[parent];
                pos = parent;
            }
            self.score[pos] = s;
            self.index[pos] = i;
        } else if cap > 0 && worse(self.score[0], self.index[0], s, i) {
            self.sift_down_from_root(s, i);
        }
    }

    /// Replace the root by `(s, i)` and restore the heap order.
    #[inline]
    fn sift_down_from_root(&mut self, s: f32, i: i64) {
        let n = self.len;
        let mut pos = 0;
        loop {
            let l = 2 * pos + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let child = if r < n && worse(self.score[r], self.index[r], self.score[l], self.index[l]) { r } else { l };
            if !worse(self.score[child], self.index[child], s, i) {
                break;
            }
            self.score[pos] = self.score[child];
            self.index[pos] = self.index[child];
            pos = child;
        }
        self.score[pos] = s;
        self.index[pos] = i;
    }

    /// Sort the kept items best first (in place); returns how many there are.
    pub(crate) fn into_sorted(self) -> usize {
        let n = self.len;
        let mut pairs: Vec<(f32, i64)> = (0..n).map(|j| (self.score[j], self.index[j])).collect();
        pairs.sort_unstable_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
        for (j, (s, i)) in pairs.into_iter().enumerate() {
            self.score[j] = s;
            self.index[j] = i;
        }
        n
    }
}

/// The heaps of a tile of queries (`kk` slots each, row-major) with a copy of their
/// thresholds side by side, so that a key's scores for 16 queries are tested against 16
/// thresholds with one vector compare.
pub(crate) struct Heaps<'a> {
    score: &'a mut [f32],
    index: &'a mut [i64],
    len: &'a mut [usize],
    thr: Vec<f32>,
    kk: usize,
}

impl<'a> Heaps<'a> {
    /// Heaps over `len.len()` rows of `kk` slots (`len[i]` of row `i` filled).
    pub(crate) fn new(score: &'a mut [f32], index: &'a mut [i64], len: &'a mut [usize], kk: usize) -> Self {
        let thr = (0..len.len())
            .map(|i| Heap::new(&mut score[i * kk..(i + 1) * kk], &mut index[i * kk..(i + 1) * kk], len[i]).threshold())
            .collect();
        Heaps { score, index, len, thr, kk }
    }

    #[inline]
    fn push(&mut self, i: usize, s: f32, j: i64) {
        let kk = self.kk;
        let mut h =
            Heap::new(&mut self.score[i * kk..(i + 1) * kk], &mut self.index[i * kk..(i + 1) * kk], self.len[i]);
        h.push(s, j);
        self.len[i] = h.len();
        self.thr[i] = h.threshold();
    }

    /// Offer a block of keys to rows `r0..r0 + m`: `block[j·m + i] + add[j]` (`add` empty:
    /// `+ 0`) is row `r0 + i`'s score of key `base + j`. Keys must come in increasing
    /// index order over all calls, so that a score equal to a row's threshold never
    /// enters (the lower index already in the heap wins the tie). Compiled for `level`.
    pub(crate) fn offer(&mut self, level: VectorLevel, block: &[f32], r0: usize, m: usize, add: &[f32], base: i64) {
        match level {
            // SAFETY: `Avx512` / `Avx2` are only chosen on machines that have them
            // (`crate::cpu::vector_level` / `vector_levels`).
            #[cfg(target_arch = "x86_64")]
            VectorLevel::Avx512 => unsafe { self.offer_avx512(block, r0, m, add, base) },
            #[cfg(target_arch = "x86_64")]
            VectorLevel::Avx2 => unsafe { self.offer_avx2(block, r0, m, add, base) },
            _ => self.offer_body(block, r0, m, add, base),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn offer_avx512(&mut self, block: &[f32], r0: usize, m: usize, add: &[f32], base: i64) {
        self.offer_body(block, r0, m, add, base)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn offer_avx2(&mut self, block: &[f32], r0: usize, m: usize, add: &[f32], base: i64) {
        self.offer_body(block, r0, m, add, base)
    }

    #[inline(always)]
    fn offer_body(&mut self, block: &[f32], r0: usize, m: usize, add: &[f32], base: i64) {
        if m == 0 {
            return;
        }
        let n = block.len() / m;
        let add_at = |j: usize| if add.is_empty() { 0.0 } else { add[j] };
        // 16 rows at a time, key after key: their thresholds stay in a register until a
        // push changes one of them.
        for c in 0..m / 16 {
            let i0 = r0 + 16 * c;
            let mut t: [f32; 16] = [0.0; 16];
            t.copy_from_slice(&self.thr[i0..i0 + 16]);
            for j in 0..n {
                let Some(v) = block[j * m + 16 * c..].first_chunk::<16>() else { break };
                let a = add_at(j);
                // All 16 compares at once (an OR over lanes: vector compare + mask test).
                if v.iter().zip(&t).fold(false, |any, (&s, &t)| any | (s + a < t)) {
                    for (l, &s) in v.iter().enumerate() {
                        if s + a < self.thr[i0 + l] {
                            self.push(i0 + l, s + a, base + j as i64);
                        }
                    }
                    t.copy_from_slice(&self.thr[i0..i0 + 16]);
                }
            }
        }
        for i in 16 * (m / 16)..m {
            let mut t = self.thr[r0 + i];
            for j in 0..n {
                let s = block[j * m + i] + add_at(j);
                if s < t {
                    self.push(r0 + i, s, base + j as i64);
                    t = self.thr[r0 + i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offer `row` (scores of keys `0..row.len()`) to `m` copies of a heap in blocks of
    /// `nb` keys at `level`; each row's sorted indices.
    fn offer_rows(level: VectorLevel, row: &[f32], m: usize, k: usize, nb: usize) -> Vec<Vec<i64>> {
        let mut s = vec![0.0f32; m * k];
        let mut i = vec![0i64; m * k];
        let mut len = vec![0usize; m];
        let mut h = Heaps::new(&mut s, &mut i, &mut len, k);
        for (b, keys) in row.chunks(nb).enumerate() {
            // Row r sees the scores plus r (adds the same to every key: same order).
            let block: Vec<f32> = keys.iter().flat_map(|&v| (0..m).map(move |r| v + r as f32)).collect();
            h.offer(level, &block, 0, m, &[], (b * nb) as i64);
        }
        drop(h);
        (0..m)
            .map(|r| {
                let n = Heap::new(&mut s[r * k..(r + 1) * k], &mut i[r * k..(r + 1) * k], len[r]).into_sorted();
                i[r * k..r * k + n].to_vec()
            })
            .collect()
    }

    #[test]
    fn keeps_k_smallest_with_ties_to_lower_index() {
        let vals = [3.0f32, 1.0, 2.0, 1.0, 0.5, 2.0, 1.0, 9.0];
        for level in crate::cpu::vector_levels() {
            for m in [1, 17, 40] {
                for got in offer_rows(level, &vals, m, 3, 3) {
                    assert_eq!(got, vec![4, 1, 3], "{level:?} m={m}");
                }
            }
        }
    }

    #[test]
    fn push_out_of_order_breaks_ties_by_index() {
        let mut s = vec![0.0; 2];
        let mut i = vec![0i64; 2];
        let mut h = Heap::new(&mut s, &mut i, 0);
        for (v, j) in [(1.0, 9), (1.0, 5), (1.0, 7), (1.0, 2), (2.0, 0)] {
            h.push(v, j);
        }
        h.into_sorted();
        assert_eq!(i, vec![2, 5]);
    }

    #[test]
    fn long_row_matches_sort() {
        let row: Vec<f32> = (0..1000u32).map(|j| ((j * 7919) % 101) as f32).collect();
        let mut want: Vec<(f32, i64)> = row.iter().enumerate().map(|(j, &v)| (v, j as i64)).collect();
        want.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
        for level in crate::cpu::vector_levels() {
            for k in [1usize, 5, 50, 1000] {
                let wi: Vec<i64> = want[..k].iter().map(|p| p.1).collect();
                for got in offer_rows(level, &row, 33, k, 64) {
                    assert_eq!(got, wi, "{level:?} k={k}");
                }
            }
        }
    }

    #[test]
    fn added_norms_and_row_offsets() {
        // Two calls for rows 0..3 and 3..5 of a 5-row tile; scores s + add[j].
        let (k, m) = (2, 5);
        let mut s = vec![0.0f32; m * k];
        let mut i = vec![0i64; m * k];
        let mut len = vec![0usize; m];
        let mut h = Heaps::new(&mut s, &mut i, &mut len, k);
        let add = [0.0f32, -10.0, 5.0, -10.0];
        let block = |rows: usize| -> Vec<f32> { (0..4 * rows).map(|v| (v % 3) as f32).collect() };
        h.offer(VectorLevel::Portable, &block(3), 0, 3, &add, 100);
        h.offer(crate::cpu::vector_level(), &block(2), 3, 2, &add, 100);
        drop(h);
        assert_eq!(len, vec![2; m]);
        for r in 0..m {
            let mut got: Vec<i64> = i[r * k..(r + 1) * k].to_vec();
            got.sort();
            assert_eq!(got, vec![101, 103], "row {r}");
        }
    }
}
