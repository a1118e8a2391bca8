//! Bit matrices: rows packed as numpy packs them, and columns packed into `u64` words.
//!
//! [`PackedRows`] borrows an `(R, N)` bool matrix packed along rows exactly as
//! `np.packbits(matrix, axis=1)` packs it: `ceil(N / 8)` bytes per row, column `c` in bit
//! `7 - c % 8` (most significant first) of byte `c / 8`, padding bits zero. It is how
//! masks and bool outcomes cross from Python, at one bit per value.
//!
//! [`BitColumns`] is the layout the popcount kernels read: `N` columns of `ceil(R / 64)`
//! words, bit `r % 64` of word `r / 64` of column `i` holding `matrix[r, i]`. Padding bits
//! past `R` are zero, so AND + popcount over whole words counts runs exactly.

use rayon::prelude::*;

use crate::cpu::VectorLevel;
use crate::error::{check_len, checked_size, try_filled, Result};

/// A borrowed `(rows, cols)` bit matrix packed along rows (`np.packbits(m, axis=1)`).
#[derive(Debug, Clone, Copy)]
pub struct PackedRows<'a> {
    bytes: &'a [u8],
    rows: usize,
    cols: usize,
    stride: usize,
}

impl<'a> PackedRows<'a> {
    /// Wrap `bytes`, checking it holds `rows * ceil(cols / 8)` bytes.
    pub fn new(name: &str, bytes: &'a [u8], rows: usize, cols: usize) -> Result<Self> {
        let stride = cols.div_ceil(8);
        check_len(name, bytes.len(), rows, stride).map_err(|_| {
            crate::Error::Invalid(format!(
                "{name}: {rows} packed rows of {cols} bits need {rows} x {stride} bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self { bytes, rows, cols, stride })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Bytes per packed row.
    pub fn stride(&self) -> usize {
        self.stride
    }
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Value of bit (row, col).
    #[inline(always)]
    pub fn get(&self, row: usize, col: usize) -> bool {
        (self.bytes[row * self.stride + col / 8] >> (7 - col % 8)) & 1 == 1
    }

    /// Unpack columns `c0..c0 + out.len()` of `row` into `out` as 0 / 1 (`c0` a multiple of 8).
    #[inline]
    pub fn unpack_into<T: From<u8> + Copy>(&self, row: usize, c0: usize, out: &mut [T]) {
        debug_assert!(c0.is_multiple_of(8));
        let bytes = &self.bytes[row * self.stride + c0 / 8..];
        for (chunk, &b) in out.chunks_mut(8).zip(bytes) {
            for (j, o) in chunk.iter_mut().enumerate() {
                *o = T::from((b >> (7 - j)) & 1);
            }
        }
    }
}

/// Pack a `(rows, cols)` row-major bool matrix as `np.packbits(m, axis=1)` does (for tests
/// and for callers that hold bools).
pub fn pack_rows(data: &[bool], rows: usize, cols: usize) -> Result<Vec<u8>> {
    pack_bytes(&data.iter().map(|&b| u8::from(b)).collect::<Vec<u8>>(), rows, cols)
}

/// The packed byte of 8 values held one per byte in `x` (byte `j` is column `8 b + j`): a
/// nonzero byte is a set bit, and column `8 b` goes to the most significant bit, as numpy
/// packs. Each byte is first reduced to 0 / 1 in its low bit; the multiply then moves
/// byte `j`'s bit to bit `63 - j` and leaves every other product term below bit 56 with
/// no carries (the terms `63 + 8 i - 9 j` are all distinct).
#[inline(always)]
fn pack8(x: u64) -> u8 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let nonzero = (((x & LOW7) + LOW7) | x) & !LOW7;
    ((nonzero >> 7).wrapping_mul(0x8040_2010_0804_0201) >> 56) as u8
}

/// Pack a `(rows, cols)` row-major matrix of bytes (numpy bools: nonzero = set) as
/// `np.packbits(m, axis=1)` does, in parallel over rows: one read of the bytes where numpy
/// packs on one thread.
pub fn pack_bytes(data: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>> {
    check_len("bit matrix", data.len(), rows, cols)?;
    let stride = cols.div_ceil(8);
    let mut out = try_filled("packed bits", checked_size("packed bits", rows, stride)?, 0u8)?;
    if stride == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(stride).zip(data.par_chunks(cols)).with_min_len(64).for_each(|(dst, row)| {
        let mut full = row.chunks_exact(8);
        for (d, c) in dst.iter_mut().zip(full.by_ref()) {
            *d = pack8(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let tail = full.remainder();
        if !tail.is_empty() {
            let mut last = [0u8; 8];
            last[..tail.len()].copy_from_slice(tail);
            dst[stride - 1] = pack8(u64::from_le_bytes(last));
        }
    });
    Ok(out)
}

/// An element of a dense 0 / 1 matrix: nonzero is 1.
pub trait ZeroOne: Copy + Sync {
    fn one(self) -> bool;
}
impl ZeroOne for bool {
    #[inline(always)]
    fn one(self) -> bool {
        self
    }
}
impl ZeroOne for u8 {
    #[inline(always)]
    fn one(self) -> bool {
        self != 0
    }
}
impl ZeroOne for u16 {
    #[inline(always)]
    fn one(self) -> bool {
        self != 0
    }
}

/// A borrowed row-major `(rows, cols)` matrix read as 0 / 1 (nonzero = 1): a bool array
/// as numpy holds it (crossing as uint8, so any nonzero byte is a set bit), or draw counts.
/// The kernels that transpose the runs into words read it directly: packing it first
/// would be one more pass over the bytes.
#[derive(Debug, Clone, Copy)]
pub struct DenseRows<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
}

impl<'a, T: ZeroOne> DenseRows<'a, T> {
    /// Wrap `data`, checking it holds `rows * cols` elements.
    pub fn new(name: &str, data: &'a [T], rows: usize, cols: usize) -> Result<Self> {
        check_len(name, data.len(), rows, cols)?;
        Ok(Self { data, rows, cols })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Row `r`.
    #[inline(always)]
    pub fn row(&self, r: usize) -> &'a [T] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
    /// Row `r`, or an empty slice past the last row (rows past the end read as zero).
    #[inline(always)]
    fn row_or_empty(&self, r: usize) -> &'a [T] {
        if r < self.rows {
            self.row(r)
        } else {
            &[]
        }
    }
}

/// A run-by-example bit matrix as it crosses from Python: packed rows or one byte per value.
#[derive(Debug, Clone, Copy)]
pub enum BitRows<'a> {
    Packed(PackedRows<'a>),
    Bytes(DenseRows<'a, u8>),
}

impl BitRows<'_> {
    pub fn rows(&self) -> usize {
        match self {
            BitRows::Packed(p) => p.rows,
            BitRows::Bytes(b) => b.rows,
        }
    }
    pub fn cols(&self) -> usize {
        match self {
            BitRows::Packed(p) => p.cols,
            BitRows::Bytes(b) => b.cols,
        }
    }
}

impl<'a> From<PackedRows<'a>> for BitRows<'a> {
    fn from(p: PackedRows<'a>) -> Self {
        BitRows::Packed(p)
    }
}

impl<'a> From<DenseRows<'a, u8>> for BitRows<'a> {
    fn from(b: DenseRows<'a, u8>) -> Self {
        BitRows::Bytes(b)
    }
}

/// A word layout of the runs ([`RunWords`], [`BitColumns`]) built from a matrix as it
/// crossed: packed rows transposed, or bytes read once.
pub trait FromBitRows: Sized {
    fn transpose_packed(p: PackedRows<'_>) -> Result<Self>;
    fn transpose_bytes(b: DenseRows<'_, u8>, level: VectorLevel) -> Result<Self>;

    /// From bytes at this machine's vector level.
    fn from_bytes(b: DenseRows<'_, u8>) -> Result<Self> {
        Self::transpose_bytes(b, crate::cpu::vector_level())
    }

    /// From either form.
    fn from_rows(m: BitRows<'_>) -> Result<Self> {
        match m {
            BitRows::Packed(p) => Self::transpose_packed(p),
            BitRows::Bytes(b) => Self::from_bytes(b),
        }
    }
}

impl FromBitRows for RunWords {
    fn transpose_packed(p: PackedRows<'_>) -> Result<Self> {
        Self::from_packed(p)
    }
    fn transpose_bytes(b: DenseRows<'_, u8>, level: VectorLevel) -> Result<Self> {
        Self::from_bytes_at(b, level)
    }
}

impl FromBitRows for BitColumns {
    fn transpose_packed(p: PackedRows<'_>) -> Result<Self> {
        Self::from_packed(p)
    }
    fn transpose_bytes(b: DenseRows<'_, u8>, level: VectorLevel) -> Result<Self> {
        Self::from_bytes_at(b, level)
    }
}

/// Columns per block of [`byte_words`].
const BYTE_BLOCK: usize = 64;

/// The words of columns `c0..c0 + out.len()` (at most [`BYTE_BLOCK`]) over the 64 byte
/// rows `src` (an empty row counts as zero): word `j` has bit `q` set when `src[q][c0 + j]`
/// is nonzero. Row `8 k + q` goes to bit `q` of byte `k`: eight rows OR-ed into one byte
/// lane per column (vectorized along the columns), then each column's eight bytes are
/// gathered into its word.
#[inline]
fn byte_words<T: ZeroOne>(src: &[&[T]; 64], c0: usize, out: &mut [u64], level: VectorLevel) {
    #[cfg(target_arch = "x86_64")]
    if level != VectorLevel::Portable && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was just detected.
        return unsafe { byte_words_avx2(src, c0, out) };
    }
    let _ = level;
    byte_words_body(src, c0, out)
}

/// [`byte_words`] compiled for AVX2: 32 columns per instruction where the baseline has 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn byte_words_avx2<T: ZeroOne>(src: &[&[T]; 64], c0: usize, out: &mut [u64]) {
    byte_words_body(src, c0, out)
}

#[inline(always)]
fn byte_words_body<T: ZeroOne>(src: &[&[T]; 64], c0: usize, out: &mut [u64]) {
    let width = out.len();
    let mut lanes = [[0u8; BYTE_BLOCK]; 8];
    for (k, lane) in lanes.iter_mut().enumerate() {
        for q in 0..8 {
            let row = src[8 * k + q];
            if row.is_empty() {
                continue;
            }
            for (acc, &b) in lane[..width].iter_mut().zip(&row[c0..c0 + width]) {
                *acc |= u8::from(b.one()) << q;
            }
        }
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = u64::from_le_bytes(std::array::from_fn(|k| lanes[k][j]));
    }
}

/// The bits of 64 consecutive rows as one word per column, word-major: `words[w * cols + i]`
/// has bit `q` set when `matrix[64 w + q, i]` is (rows past the end count as zero). The
/// layout the lookup-table sums read ([`crate::runs::masked_sums`]): one pass over the
/// runs `64 w..64 w + 64` reads a contiguous row of words, one per example, and byte `k`
/// of a word is the example's bits for runs `64 w + 8 k..64 w + 8 k + 8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunWords {
    n_rows: usize,
    n_cols: usize,
    words: Vec<u64>,
}

/// Transposes the 8 x 8 bit matrix held in `x` (bit `8 i + j` is element `(i, j)`) in
/// three steps of swaps (Hacker's Delight, 7-3).
#[inline(always)]
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// The words of the 8 columns of packed byte `b` over the 64 rows `src` (byte `b` of each
/// row; an empty row counts as zero): word `c` has bit `q` set when column `8 b + c` is set
/// in row `q`.
#[inline(always)]
fn column_words(src: &[&[u8]; 64], b: usize) -> [u64; 8] {
    let mut col = [0u64; 8];
    for k in 0..8 {
        // Byte q of x is row 8 k + q's byte (bit 7 - c of it is column 8 b + c); transposed
        // and byte-swapped, byte c holds column 8 b + c with row 8 k + q in bit q, which is
        // byte k of that column's word.
        let x = u64::from_le_bytes(std::array::from_fn(|q| src[8 * k + q].get(b).copied().unwrap_or(0)));
        let y = transpose8(x).swap_bytes().to_le_bytes();
        for (c, word) in col.iter_mut().enumerate() {
            *word |= (y[c] as u64) << (8 * k);
        }
    }
    col
}

impl RunWords {
    /// Transpose a byte-per-value matrix at a vector level, in parallel over the words of
    /// 64 rows.
    pub fn from_bytes_at(b: DenseRows<'_, u8>, level: VectorLevel) -> Result<Self> {
        let (rows, cols) = (b.rows, b.cols);
        let mut words = try_filled("run words", checked_size("run words", rows.div_ceil(64), cols)?, 0u64)?;
        if cols == 0 {
            return Ok(Self { n_rows: rows, n_cols: cols, words });
        }
        words.par_chunks_mut(cols).enumerate().for_each(|(w, out)| {
            let src: [&[u8]; 64] = std::array::from_fn(|q| b.row_or_empty(64 * w + q));
            for (blk, dst) in out.chunks_mut(BYTE_BLOCK).enumerate() {
                byte_words(&src, blk * BYTE_BLOCK, dst, level);
            }
        });
        Ok(Self { n_rows: rows, n_cols: cols, words })
    }

    /// Transpose a row-packed matrix, in parallel over the words of 64 rows.
    pub fn from_packed(p: PackedRows<'_>) -> Result<Self> {
        let (rows, cols, stride) = (p.rows, p.cols, p.stride);
        let mut words = try_filled("run words", checked_size("run words", rows.div_ceil(64), cols)?, 0u64)?;
        if cols == 0 {
            return Ok(Self { n_rows: rows, n_cols: cols, words });
        }
        words.par_chunks_mut(cols).enumerate().for_each(|(w, out)| {
            let src: [&[u8]; 64] = std::array::from_fn(|q| {
                let r = 64 * w + q;
                if r < rows {
                    &p.bytes[r * stride..(r + 1) * stride]
                } else {
                    &[]
                }
            });
            for (b, dst) in out.chunks_mut(8).enumerate() {
                dst.copy_from_slice(&column_words(&src, b)[..dst.len()]);
            }
        });
        Ok(Self { n_rows: rows, n_cols: cols, words })
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }
    /// Number of words of 64 rows, `ceil(n_rows / 64)`.
    pub fn n_words(&self) -> usize {
        self.n_rows.div_ceil(64)
    }

    /// The words of rows `64 w..64 w + 64`, one per column.
    #[inline]
    pub fn row(&self, w: usize) -> &[u64] {
        &self.words[w * self.n_cols..(w + 1) * self.n_cols]
    }

    /// Number of set bits in each column (in parallel over ranges of columns).
    pub fn counts(&self) -> Vec<u32> {
        let mut out = vec![0u32; self.n_cols];
        out.par_chunks_mut(PACK_BYTES * 8).enumerate().for_each(|(chunk, out)| {
            let c0 = chunk * PACK_BYTES * 8;
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("popcnt") {
                // SAFETY: the feature was just detected.
                return unsafe { self.count_popcnt(c0, out) };
            }
            self.count_into(c0, out)
        });
        out
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn count_popcnt(&self, c0: usize, out: &mut [u32]) {
        self.count_into(c0, out)
    }

    /// Adds the set bits of columns `c0..c0 + out.len()` into `out`.
    #[inline(always)]
    fn count_into(&self, c0: usize, out: &mut [u32]) {
        for w in 0..self.n_words() {
            for (c, &x) in out.iter_mut().zip(&self.row(w)[c0..]) {
                *c += x.count_ones();
            }
        }
    }

    /// Value of bit (row, col).
    pub fn get(&self, row: usize, col: usize) -> bool {
        (self.row(row / 64)[col] >> (row % 64)) & 1 == 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitColumns {
    n_rows: usize,
    n_cols: usize,
    n_words: usize,
    words: Vec<u64>,
}

/// Byte columns (8 matrix columns each) transposed per parallel task.
const PACK_BYTES: usize = 256;

impl BitColumns {
    /// Transpose a row-packed `(rows, cols)` matrix ([`PackedRows`] layout, `bytes.len()
    /// == rows * ceil(cols / 8)`) into columns of words, in parallel.
    pub fn from_packed_rows(bytes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        Self::from_packed(PackedRows::new("bit matrix", bytes, rows, cols)?)
    }

    /// Same, from a checked [`PackedRows`].
    pub fn from_packed(p: PackedRows<'_>) -> Result<Self> {
        Self::transpose(p, p.rows, |r| r)
    }

    /// Transpose a byte-per-value matrix at a vector level, in parallel over blocks of
    /// columns.
    pub fn from_bytes_at(b: DenseRows<'_, u8>, level: VectorLevel) -> Result<Self> {
        let (rows, cols) = (b.rows, b.cols);
        let n_words = rows.div_ceil(64).next_multiple_of(crate::runs::popcount::WORD_ALIGN);
        let mut words = try_filled("bit columns", checked_size("bit columns", cols, n_words)?, 0u64)?;
        if cols == 0 || rows == 0 {
            return Ok(Self { n_rows: rows, n_cols: cols, n_words, words });
        }
        words.par_chunks_mut(BYTE_BLOCK * n_words).enumerate().for_each(|(blk, out)| {
            let mut block = [0u64; BYTE_BLOCK];
            let width = out.len() / n_words;
            for w in 0..rows.div_ceil(64) {
                let src: [&[u8]; 64] = std::array::from_fn(|q| b.row_or_empty(64 * w + q));
                byte_words(&src, blk * BYTE_BLOCK, &mut block[..width], level);
                for (j, &word) in block[..width].iter().enumerate() {
                    out[j * n_words + w] = word;
                }
            }
        });
        Ok(Self { n_rows: rows, n_cols: cols, n_words, words })
    }

    /// The columns of the rows `rows` of `p` (in that order; repeats allowed), without
    /// copying those rows first.
    pub fn from_packed_selected(p: PackedRows<'_>, rows: &[usize]) -> Result<Self> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= p.rows) {
            return Err(crate::Error::Invalid(format!("row index {bad} out of range for {} rows", p.rows)));
        }
        Self::transpose(p, rows.len(), |r| rows[r])
    }

    /// Columns of the `rows` rows `source(0..rows)` of `p`.
    fn transpose(p: PackedRows<'_>, rows: usize, source: impl Fn(usize) -> usize + Sync) -> Result<Self> {
        let (cols, stride) = (p.cols, p.stride);
        // Padded to whole SIMD steps so kernels need no tail handling.
        let n_words = rows.div_ceil(64).next_multiple_of(crate::runs::popcount::WORD_ALIGN);
        let mut words = try_filled("bit columns", checked_size("bit columns", cols, n_words)?, 0u64)?;
        if cols == 0 || rows == 0 {
            return Ok(Self { n_rows: rows, n_cols: cols, n_words, words });
        }
        words.par_chunks_mut(8 * PACK_BYTES * n_words).enumerate().for_each(|(chunk, out)| {
            let b0 = chunk * PACK_BYTES;
            let width = out.len() / n_words; // matrix columns in this chunk
            for w in 0..rows.div_ceil(64) {
                let src: [&[u8]; 64] = std::array::from_fn(|q| {
                    let r = 64 * w + q;
                    if r < rows {
                        let at = source(r) * stride;
                        &p.bytes[at..at + stride]
                    } else {
                        &[]
                    }
                });
                for b in 0..width.div_ceil(8) {
                    for (c, &word) in column_words(&src, b0 + b).iter().enumerate().take(width - 8 * b) {
                        out[(8 * b + c) * n_words + w] = word;
                    }
                }
            }
        });
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

    fn matrix(r: usize, c: usize, seed: usize) -> Vec<bool> {
        (0..r * c).map(|k| ((k + seed) * 7 + (k + seed) / 3) % 5 < 2).collect()
    }

    #[test]
    fn pack_bytes_matches_bit_by_bit_packing_for_any_nonzero_byte() {
        for &(r, c) in &[(0usize, 3usize), (3, 0), (1, 1), (2, 7), (3, 8), (5, 9), (70, 131), (9, 4099)] {
            // Bytes 0..=255 with zeros often: every nonzero byte is a set bit, as for numpy.
            let data: Vec<u8> = (0..r * c).map(|k| if k % 3 == 0 { 0 } else { (k * 37 % 256) as u8 }).collect();
            let got = pack_bytes(&data, r, c).unwrap();
            let stride = c.div_ceil(8);
            let mut want = vec![0u8; r * stride];
            for rr in 0..r {
                for cc in 0..c {
                    if data[rr * c + cc] != 0 {
                        want[rr * stride + cc / 8] |= 0x80 >> (cc % 8);
                    }
                }
            }
            assert_eq!(got, want, "{r} x {c}");
        }
        assert!(pack_bytes(&[1, 0, 1], 2, 2).is_err());
    }

    #[test]
    fn byte_rows_transpose_as_packed_rows_do() {
        for &(r, c) in &[(0usize, 3usize), (3, 0), (1, 1), (63, 5), (64, 64), (65, 65), (129, 200), (200, 4099)] {
            let data = matrix(r, c, 1);
            // Any nonzero byte is a set bit.
            let bytes: Vec<u8> =
                data.iter().enumerate().map(|(k, &v)| if v { 1 + (k % 255) as u8 } else { 0 }).collect();
            let packed = pack_rows(&data, r, c).unwrap();
            let p = PackedRows::new("m", &packed, r, c).unwrap();
            let b = DenseRows::new("m", &bytes[..], r, c).unwrap();
            let (rw, bc) = (RunWords::from_packed(p).unwrap(), BitColumns::from_packed(p).unwrap());
            assert_eq!(RunWords::from_rows(b.into()).unwrap(), rw, "{r} x {c}");
            assert_eq!(BitColumns::from_rows(b.into()).unwrap(), bc, "{r} x {c}");
            for level in crate::cpu::vector_levels() {
                assert_eq!(RunWords::from_bytes_at(b, level).unwrap(), rw, "{r} x {c} {level:?}");
                assert_eq!(BitColumns::from_bytes_at(b, level).unwrap(), bc, "{r} x {c} {level:?}");
            }
        }
        assert!(DenseRows::new("m", &[1u8, 0, 1][..], 2, 2).is_err());
    }

    #[test]
    fn roundtrip_odd_shapes() {
        for &(r, c) in &[(0usize, 3usize), (3, 0), (1, 1), (63, 5), (64, 2), (65, 3000), (130, 7), (200, 4099)] {
            let data = matrix(r, c, 0);
            let packed = pack_rows(&data, r, c).unwrap();
            let p = PackedRows::new("m", &packed, r, c).unwrap();
            let b = BitColumns::from_packed_rows(&packed, r, c).unwrap();
            let mut row = vec![0u8; c];
            for rr in 0..r {
                p.unpack_into(rr, 0, &mut row);
                for col in 0..c {
                    assert_eq!(b.get(rr, col), data[rr * c + col]);
                    assert_eq!(p.get(rr, col), data[rr * c + col]);
                    assert_eq!(row[col] == 1, data[rr * c + col]);
                }
            }
            let rw = RunWords::from_packed(p).unwrap();
            assert_eq!(rw.counts(), b.counts());
            for rr in 0..r {
                for col in 0..c {
                    assert_eq!(rw.get(rr, col), data[rr * c + col]);
                }
            }
            // Padding rows of the last word are zero.
            if r % 64 != 0 && c > 0 {
                assert!(rw.row(r / 64).iter().all(|&x| x >> (r % 64) == 0));
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
    fn selected_rows_equal_a_copy_of_those_rows() {
        let (r, c) = (150, 77);
        let data = matrix(r, c, 3);
        let packed = pack_rows(&data, r, c).unwrap();
        let p = PackedRows::new("m", &packed, r, c).unwrap();
        let pick = [149usize, 0, 64, 64, 7, 100, 63, 65];
        let copy: Vec<bool> = pick.iter().flat_map(|&i| data[i * c..(i + 1) * c].to_vec()).collect();
        let want = BitColumns::from_packed_rows(&pack_rows(&copy, pick.len(), c).unwrap(), pick.len(), c).unwrap();
        assert_eq!(BitColumns::from_packed_selected(p, &pick).unwrap(), want);
        assert_eq!(BitColumns::from_packed_selected(p, &[]).unwrap().n_rows(), 0);
        assert!(BitColumns::from_packed_selected(p, &[150]).is_err());
    }

    #[test]
    fn packing_matches_numpy_bit_order() {
        // np.packbits([[1, 0, 0, 0, 0, 0, 0, 1, 1]], axis=1) == [[0x81, 0x80]]
        let data = [true, false, false, false, false, false, false, true, true];
        assert_eq!(pack_rows(&data, 1, 9).unwrap(), vec![0x81, 0x80]);
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(BitColumns::from_packed_rows(&[1, 2], 3, 1).is_err());
        assert!(BitColumns::from_packed_rows(&[0; 4], 2, 17).is_err());
        assert!(PackedRows::new("m", &[], usize::MAX, usize::MAX).is_err());
    }
}
