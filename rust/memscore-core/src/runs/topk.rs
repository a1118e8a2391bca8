//! A bounded selection of the `k` largest values, ties toward the lower index.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Heap entry ordered so that the *worst* kept candidate sits on top: smaller value is
/// worse, and among equal values the larger index is worse.
#[derive(Debug, Clone, Copy)]
struct Entry {
    value: f64,
    index: i64,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // "Greater" = worse, so BinaryHeap (a max-heap) exposes the worst entry.
        other.value.total_cmp(&self.value).then(self.index.cmp(&other.index))
    }
}

/// Keeps the `k` best (value, index) pairs pushed so far; NaN values are ignored.
#[derive(Debug)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        // Capacity grows with use: a huge k on few defined values must not reserve k slots.
        Self { k, heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 12)) }
    }

    #[inline]
    pub fn push(&mut self, value: f64, index: i64) {
        if value.is_nan() || self.k == 0 {
            return;
        }
        let e = Entry { value, index };
        if self.heap.len() < self.k {
            self.heap.push(e);
        } else if let Some(worst) = self.heap.peek() {
            if e < *worst {
                self.heap.pop();
                self.heap.push(e);
            }
        }
    }

    /// Write best-first into `idx` / `val` (length k), padding with -1 / NaN.
    pub fn write_sorted(self, idx: &mut [i64], val: &mut [f64]) {
        let sorted = self.heap.into_sorted_vec(); // ascending = best first
        for q in 0..idx.len() {
            match sorted.get(q) {
                Some(e) => {
                    idx[q] = e.index;
                    val[q] = e.value;
                }
                None => {
                    idx[q] = -1;
                    val[q] = f64::NAN;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_with_lower_index_on_ties() {
        let mut t = TopK::new(3);
        for (i, v) in [1.0, 5.0, 5.0, f64::NAN, 2.0, 5.0, -1.0].iter().enumerate() {
            t.push(*v, i as i64);
        }
        let (mut idx, mut val) = ([0i64; 4], [0f64; 4]);
        t.write_sorted(&mut idx, &mut val);
        assert_eq!(idx, [1, 2, 5, -1]);
        assert_eq!(&val[..3], &[5.0, 5.0, 5.0]);
        assert!(val[3].is_nan());
    }
}
