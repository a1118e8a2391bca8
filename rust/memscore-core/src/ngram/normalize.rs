//! Text normalization shared by corpus text and query text.
//!
//! Rules, in order, for [`Normalizer::words`]:
//! 1. split on whitespace: Rust's `char::is_whitespace` plus U+001C..U+001F, which is
//!    exactly the set Python's `str.split()` splits on;
//! 2. (`strip_punctuation`) delete every character whose Unicode general category is
//!    punctuation (P*) or symbol (S*): deleted, not replaced by a space, so "don't" -> "dont",
//!    "well-known" -> "wellknown", "$5" -> "5";
//! 3. (`lowercase`) full Unicode lowercase of what is left of the word (`str::to_lowercase`,
//!    final sigma included, as Python's `str.lower()`);
//! 4. empty words are dropped; (stopwords) words in the stopword set are dropped.
//!
//! The ASCII fast path gives the same result as the general path, byte for byte.

use rustc_hash::FxHashSet;

use super::punct_table::PUNCT_RANGES;

/// The English stopword list shipped with memscore (see `stopwords_en.txt`).
pub const ENGLISH_STOPWORDS_TXT: &str = include_str!("stopwords_en.txt");

/// The English stopwords, one `&str` each, comments skipped.
pub fn english_stopwords() -> Vec<&'static str> {
    ENGLISH_STOPWORDS_TXT.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

/// True for characters in a P* or S* general category.
#[inline]
pub fn is_punct_or_symbol(c: char) -> bool {
    let cp = c as u32;
    if cp < 0x80 {
        return (0x21..=0x7E).contains(&cp) && !c.is_ascii_alphanumeric();
    }
    PUNCT_RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whitespace as Python's `str.split()` sees it.
#[inline]
pub fn is_split_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1C}'..='\u{1F}').contains(&c)
}

#[inline]
fn is_ascii_split_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x1C..=0x1F)
}

/// Lowercase / punctuation / stopword rules (the word normalizer).
#[derive(Clone, Debug)]
pub struct Normalizer {
    pub lowercase: bool,
    pub strip_punctuation: bool,
    pub stopwords: FxHashSet<Box<str>>,
    /// bytes the rules leave alone (ASCII, not removed, not changed): a word made only of
    /// them is its own normal form, and is passed on without a copy
    unchanged: [bool; 256],
}

impl Default for Normalizer {
    fn default() -> Self {
        Normalizer::new(false, false, Vec::<String>::new())
    }
}

impl Normalizer {
    pub fn new(lowercase: bool, strip_punctuation: bool, stopwords: impl IntoIterator<Item = String>) -> Self {
        let mut unchanged = [false; 256];
        for (b, u) in unchanged.iter_mut().enumerate() {
            let c = b as u8;
            let punct = (0x21..=0x7E).contains(&c) && !c.is_ascii_alphanumeric();
            *u = c < 0x80 && !(lowercase && c.is_ascii_uppercase()) && !(strip_punctuation && punct);
        }
        let mut n = Normalizer { lowercase, strip_punctuation, stopwords: FxHashSet::default(), unchanged };
        let mut buf = String::new();
        let mut words = Vec::new();
        for w in stopwords {
            // stopwords are stored normalized, so "Don't" matches the corpus word "dont"
            words.clear();
            n.words(&w, &mut buf, |t| words.push(t.to_string()));
            for t in words.drain(..) {
                n.stopwords.insert(t.into_boxed_str());
            }
        }
        n
    }

    /// Normalize one word (no whitespace inside) into `out`; `out` is cleared first.
    #[inline]
    pub fn word_into(&self, word: &str, out: &mut String) {
        out.clear();
        if word.is_ascii() {
            // SAFETY-free ASCII path: filter and lowercase bytes.
            let bytes = word.as_bytes();
            // push ASCII bytes as chars; ASCII is valid UTF-8 byte by byte
            for &b in bytes {
                if self.strip_punctuation && (0x21..=0x7E).contains(&b) && !b.is_ascii_alphanumeric() {
                    continue;
                }
                out.push(if self.lowercase { b.to_ascii_lowercase() } else { b } as char);
            }
            return;
        }
        if self.strip_punctuation {
            let kept: String = word.chars().filter(|&c| !is_punct_or_symbol(c)).collect();
            if self.lowercase {
                out.push_str(&kept.to_lowercase());
            } else {
                out.push_str(&kept);
            }
        } else if self.lowercase {
            out.push_str(&word.to_lowercase());
        } else {
            out.push_str(word);
        }
    }

    /// Call `f` with each raw whitespace-separated word of `text` (not normalized).
    #[inline]
    pub fn raw_words<'t>(text: &'t str, mut f: impl FnMut(&'t str)) {
        let bytes = text.as_bytes();
        let n = bytes.len();
        let mut i = 0;
        while i < n {
            // skip whitespace
            while i < n {
                let b = bytes[i];
                if b < 0x80 {
                    if is_ascii_split_space(b) {
                        i += 1;
                        continue;
                    }
                    break;
                }
                let c = text[i..].chars().next().unwrap_or(' ');
                if is_split_space(c) {
                    i += c.len_utf8();
                    continue;
                }
                break;
            }
            if i >= n {
                break;
            }
            let start = i;
            while i < n {
                let b = bytes[i];
                if b < 0x80 {
                    if is_ascii_split_space(b) {
                        break;
                    }
                    i += 1;
                    continue;
                }
                let c = text[i..].chars().next().unwrap_or(' ');
                if is_split_space(c) {
                    break;
                }
                i += c.len_utf8();
            }
            f(&text[start..i]);
        }
    }

    /// Call `f` with each normalized, non-empty word of `text`, stopwords NOT removed.
    #[inline]
    pub fn words_keep_stop(&self, text: &str, buf: &mut String, mut f: impl FnMut(&str)) {
        Self::raw_words(text, |w| {
            if w.bytes().all(|b| self.unchanged[b as usize]) {
                f(w);
                return;
            }
            self.word_into(w, buf);
            if !buf.is_empty() {
                f(buf);
            }
        });
    }

    /// Call `f` with each normalized word of `text`, stopwords removed.
    pub fn words(&self, text: &str, buf: &mut String, mut f: impl FnMut(&str)) {
        let stop = &self.stopwords;
        self.words_keep_stop(text, buf, |w| {
            if stop.is_empty() || !stop.contains(w) {
                f(w)
            }
        });
    }

    /// The normalized words of `text` as owned strings.
    pub fn normalize(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = String::new();
        self.words(text, &mut buf, |w| out.push(w.to_string()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_rules() {
        let n = Normalizer::new(true, true, Vec::<String>::new());
        assert_eq!(n.normalize("Hello, World!  don't well-known $5"), ["hello", "world", "dont", "wellknown", "5"]);
        assert_eq!(n.normalize("ΟΔΟΣ Straße — «quoted»"), ["οδος", "straße", "quoted"]);
        assert_eq!(n.normalize(" ... !!! "), Vec::<String>::new());
        assert_eq!(n.normalize("a\u{1F}b\u{3000}c"), ["a", "b", "c"]);
        let s = Normalizer::new(true, true, english_stopwords().into_iter().map(String::from));
        assert_eq!(s.normalize("The cat DIDN'T sit on the mat"), ["cat", "sit", "mat"]);
        let k = Normalizer::new(false, false, Vec::<String>::new());
        assert_eq!(k.normalize("A, b."), ["A,", "b."]);
    }

    #[test]
    fn table_is_sorted() {
        assert!(PUNCT_RANGES.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(is_punct_or_symbol('—') && is_punct_or_symbol('€') && !is_punct_or_symbol('é'));
    }
}
