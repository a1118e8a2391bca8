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

    /// Offer every value of `row` (scores of consecutive indices starting at `base`).
    ///
    /// Blocks of 16 are first reduced to their minimum, which compiles to vector min
    /// instructions; only a block whose minimum beats the threshold is looked at one
    /// by one. Indices increase along the row, so a candidate equal to the threshold
    /// never enters (the lower index already in the heap wins the tie).
    #[inline]
    pub(crate) fn scan(&mut self, row: &[f32], base: i64) {
        let mut thr = self.threshold();
        let mut chunks = row.chunks_exact(16);
        let mut off = 0i64;
        for c in &mut chunks {
            let mut m = c[0];
            for &v in &c[1..] {
                m = if v < m { v } else { m };
            }
            if m < thr {
                for (j, &v) in c.iter().enumerate() {
                    if v < thr {
                        self.push(v, base + off + j as i64);
                        thr = self.threshold();
                    }
                }
            }
            off += 16;
        }
        for (j, &v) in chunks.remainder().iter().enumerate() {
            if v < thr {
                self.push(v, base + off + j as i64);
                thr = self.threshold();
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_k_smallest_with_ties_to_lower_index() {
        let vals = [3.0f32, 1.0, 2.0, 1.0, 0.5, 2.0, 1.0, 9.0];
        let mut s = vec![0.0; 3];
        let mut i = vec![0i64; 3];
        let mut h = Heap::new(&mut s, &mut i, 0);
        h.scan(&vals, 0);
        assert_eq!(h.into_sorted(), 3);
        assert_eq!(i, vec![4, 1, 3]);
        assert_eq!(s, vec![0.5, 1.0, 1.0]);
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
        for k in [1usize, 5, 50, 1000] {
            let mut s = vec![0.0; k];
            let mut i = vec![0i64; k];
            let mut h = Heap::new(&mut s, &mut i, 0);
            h.scan(&row[..500], 0);
            h.scan(&row[500..], 500);
            h.into_sorted();
            let mut want: Vec<(f32, i64)> = row.iter().enumerate().map(|(j, &v)| (v, j as i64)).collect();
            want.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
            let wi: Vec<i64> = want[..k].iter().map(|p| p.1).collect();
            assert_eq!(i, wi, "k={k}");
        }
    }
}
