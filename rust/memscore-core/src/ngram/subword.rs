//! Subword tokens from a HuggingFace `tokenizer.json`, through the Rust `tokenizers` crate
//! (built with its pure-Rust regex engine, no C dependencies). Text shards counted with a
//! subword tokenizer are tokenized inside the parallel scan, one document at a time, and the
//! token ids go straight to the trie: queries are token-id n-grams of the same tokenizer.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// A loaded `tokenizer.json`. No special tokens are added.
pub struct Subword {
    tok: Tokenizer,
}

impl std::fmt::Debug for Subword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subword(vocab={})", self.tok.get_vocab_size(true))
    }
}

impl Subword {
    /// Load a `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Subword> {
        let tok = Tokenizer::from_file(path)
            .map_err(|e| Error::Invalid(format!("cannot load tokenizer {}: {e}", path.display())))?;
        Ok(Subword { tok })
    }

    /// Load a `tokenizer.json` held in memory.
    pub fn from_json(json: &str) -> Result<Subword> {
        let tok: Tokenizer = json.parse().map_err(|e| Error::Invalid(format!("cannot load tokenizer: {e}")))?;
        Ok(Subword { tok })
    }

    /// Token ids of `text`.
    pub fn ids(&self, text: &str) -> Result<Vec<u32>, String> {
        let enc = self.tok.encode_fast(text, false).map_err(|e| format!("tokenizer failed: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token strings of `text` (through `encode`: `encode_fast` skips the offsets that
    /// some models need to name their tokens).
    pub fn tokens(&self, text: &str) -> Result<Vec<String>, String> {
        let enc = self.tok.encode(text, false).map_err(|e| format!("tokenizer failed: {e}"))?;
        Ok(enc.get_tokens().to_vec())
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tok.get_vocab_size(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORD_LEVEL: &str = r#"{
      "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
      "normalizer": null,
      "pre_tokenizer": {"type": "Whitespace"},
      "post_processor": null, "decoder": null,
      "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "the": 1, "cat": 2, "sat": 3}, "unk_token": "[UNK]"}
    }"#;

    #[test]
    fn word_level_tokenizer() {
        let s = Subword::from_json(WORD_LEVEL).unwrap();
        assert_eq!(s.ids("the cat sat, dog").unwrap(), vec![1, 2, 3, 0, 0]);
        assert_eq!(s.ids("The").unwrap(), vec![0]);
        assert_eq!(s.tokens("the cat").unwrap(), vec!["the", "cat"]);
        assert_eq!(s.vocab_size(), 4);
        assert!(Subword::from_json("{}").is_err());
        assert!(Subword::from_file(Path::new("/nonexistent/tokenizer.json")).is_err());
    }
}
