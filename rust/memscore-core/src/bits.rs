//! Bit-packed columns: the runs of one example packed into `u64` words.
//!
//! A `(R, N)` run-major bool matrix becomes `N` columns of `ceil(R / 64)` words, bit
//! `r % 64` of word `r / 64` of column `i` holding `masks[r, i]`. Padding bits past
//! `R` are zero, so AND + popcount over whole words counts runs exactly.

use rayon::prelude::*;

use crate::error::{check_len, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitColumns {
    n_rows: usize,
    n_cols: usize,
    n_words: usize,
    words: Vec<u64>,
}

/// Columns packed per parallel task; keeps the 64 row slices touched per word in cache.
const PACK_COLS: usize = 2048;

impl BitColumns {
    /// Pack a `(rows, cols)` row-major bool matrix column by column.
    pub fn from_rows(data: &[bool], rows: usize, cols: usize) -> Result<Self> {
        check_len("bit matrix", data.len(), rows, cols)?;
        // Padded to whole SIMD steps so kernels need no tail handling.
        let n_words = rows.div_ceil(64).next_multiple_of(crate::runs::popcount::WORD_ALIGN);
        let mut words = vec![0u64; cols * n_words];
        if cols > 0 && n_words > 0 {
            words.par_chunks_mut(PACK_COLS * n_words).enumerate().for_each(|(chunk, out)| {
                let c0 = chunk * PACK_COLS;
                let width = out.len() / n_words;
                // Build one word per column in a contiguous scratch row (vectorizes),
                // then scatter it into the column-major layout.
                let mut acc = vec![0u64; width];
                for w in 0..rows.div_ceil(64) {
                    acc.iter_mut().for_each(|a| *a = 0);
                    let r_end = ((w + 1) * 64).min(rows);
                    for r in w * 64..r_end {
                        let bit = r - w * 64;
                        let row = &data[r * cols + c0..r * cols + c0 + width];
                        for (a, &b) in acc.iter_mut().zip(row) {
                            *a |= (b as u64) << bit;
                        }
                    }
                    for (c, &a) in acc.iter().enumerate() {
                        out[c * n_words + w] = a;
                    }
                }
            });
        }
        Ok(Self { n_rows: rows, n_cols: cols, n_words, words })
    }

    /// Every bit inverted; padding bits past `n_rows` stay zero.
    pub fn complement(&self) -> Self {
        let mut out = self.clone();
        let valid: Vec<u64> = (0..self.n_words)
            .map(|w| match self.n_rows.saturating_sub(w * 64) {
                0 => 0,
                b if b >= 64 => u64::MAX,
                b => (1u64 << b) - 1,
            })
            .collect();
        for col in out.words.chunks_mut(self.n_words.max(1)) {
            for (word, v) in col.iter_mut().zip(&valid) {
                *word = !*word & v;
            }
        }
        out
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }
    pub fn n_words(&self) -> usize {
        self.n_words
    }

    /// The packed words of column `i`.
    #[inline]
    pub fn column(&self, i: usize) -> &[u64] {
        &self.words[i * self.n_words..(i + 1) * self.n_words]
    }

    /// The packed words of columns `i0..i1`, contiguous.
    #[inline]
    pub fn columns(&self, i0: usize, i1: usize) -> &[u64] {
        &self.words[i0 * self.n_words..i1 * self.n_words]
    }

    /// Number of set bits in each column.
    pub fn counts(&self) -> Vec<u32> {
        (0..self.n_cols).map(|i| self.column(i).iter().map(|w| w.count_ones()).sum()).collect()
    }

    /// Value of bit (row, col).
    pub fn get(&self, row: usize, col: usize) -> bool {
        (self.column(col)[row / 64] >> (row % 64)) & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_odd_shapes() {
        for &(r, c) in &[(0usize, 3usize), (1, 1), (63, 5), (64, 2), (65, 3000), (130, 7)] {
            let data: Vec<bool> = (0..r * c).map(|k| (k * 7 + k / 3) % 5 < 2).collect();
            let b = BitColumns::from_rows(&data, r, c).unwrap();
            for row in 0..r {
                for col in 0..c {
                    assert_eq!(b.get(row, col), data[row * c + col]);
                }
            }
            let comp = b.complement();
            let counts = b.counts();
            let ccounts = comp.counts();
            for col in 0..c {
                assert_eq!(counts[col] + ccounts[col], r as u32);
            }
        }
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(BitColumns::from_rows(&[true, false], 3, 1).is_err());
    }
}
