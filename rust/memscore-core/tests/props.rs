//! Properties of the parsers and packers that take user data: whatever the input, they
//! return a value or a clean `Err`, never panic. Few cases each, so `cargo test` stays quick.

use memscore_core::bits::{pack_rows, BitColumns, PackedRows};
use memscore_core::ngram::index::Index;
use memscore_core::ngram::normalize::Normalizer;
use memscore_core::ngram::source::{check_offsets, count, json_field, Offsets, Shard};
use proptest::prelude::*;

/// 256 cases each (PROPTEST_CASES=N for a longer run).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A JSON-ish line: fragments that often make valid objects, and often do not.
fn jsonish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\"text\"".to_string()),
        Just("\"t\"".to_string()),
        Just(":".to_string()),
        Just(",".to_string()),
        Just("[1, {\"x\": \"}\"}]".to_string()),
        Just("null".to_string()),
        Just("\"\\u00e9\\\"q\"".to_string()),
        Just("\"\\ud800\"".to_string()),
        "[a-z \"\\\\]{0,6}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn json_field_never_panics(line in jsonish(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = json_field(line.as_bytes(), "text");
        let _ = json_field(&bytes, "text");
    }

    #[test]
    fn json_field_agrees_with_serde_json_values(
        entries in prop::collection::vec((prop_oneof![Just("text"), Just("a"), Just("b")], "[a-z ]{0,5}"), 0..6)
    ) {
        // Duplicate keys: the last value wins, as in Python's json (and serde_json's Value).
        let body: Vec<String> = entries.iter().map(|(k, v)| format!("\"{k}\": \"{v}\"")).collect();
        let line = format!("{{{}}}", body.join(", "));
        let want = entries.iter().rev().find(|(k, _)| *k == "text").map(|(_, v)| v.clone());
        match json_field(line.as_bytes(), "text") {
            Ok(got) => prop_assert_eq!(Some(got.into_owned()), want),
            Err(_) => prop_assert_eq!(want, None),
        }
    }

    #[test]
    fn normalizer_never_panics(text in any::<String>(), lower in any::<bool>(), strip in any::<bool>()) {
        let n = Normalizer::new(lower, strip, vec!["the".to_string(), "É".to_string()]);
        for w in n.normalize(&text) {
            prop_assert!(!w.is_empty());
        }
    }

    #[test]
    fn offsets_are_checked_not_trusted(
        n_tokens in 0usize..50,
        offsets in prop::collection::vec(0u64..60, 0..8),
        tokens in prop::collection::vec(0u16..6, 0..50),
    ) {
        let ok = check_offsets("s", n_tokens, &offsets).is_ok();
        let valid = (offsets.is_empty() && n_tokens == 0)
            || (!offsets.is_empty()
                && offsets[0] == 0
                && offsets.windows(2).all(|w| w[0] <= w[1])
                && offsets.iter().all(|&o| o <= n_tokens as u64));
        prop_assert_eq!(ok, valid);
        // Counting over arbitrary offsets: a result or a clean error.
        let ix = Index::build(&[1, 2, 3], &[0, 1, 3], &[(0, 1)]).unwrap();
        let shard = Shard::Tokens16 { name: "s".into(), tokens: &tokens, offsets: &offsets };
        let res = count(&[shard], &ix, None, None);
        prop_assert_eq!(res.is_ok(), check_offsets("s", tokens.len(), &offsets).is_ok());
    }

    #[test]
    fn offsets_files_of_any_content_are_clean_errors(
        bytes in prop::collection::vec(any::<u8>(), 0..80),
        width in prop_oneof![Just(0usize), Just(3), Just(4), Just(8)],
        signed in any::<bool>(),
        n_docs in 0usize..12,
        n_tokens in 0usize..20,
    ) {
        let dir = std::env::temp_dir().join(format!("memscore-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (tpath, opath) = (dir.join("tokens.bin"), dir.join("offsets.bin"));
        std::fs::write(&tpath, vec![1u8; 2 * n_tokens]).unwrap();
        std::fs::write(&opath, &bytes).unwrap();
        let ix = Index::build(&[1], &[0, 1], &[]).unwrap();
        let offsets = Offsets::File { path: opath.clone(), start: 0, width, signed, n_docs };
        let shard = Shard::TokenFile {
            name: "s".into(),
            parts: vec![tpath],
            start: 0,
            dtype: memscore_core::ngram::token_file::TokenType::U16,
            n_tokens,
            offsets,
        };
        let _ = count(&[shard], &ix, None, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn query_index_build_never_panics(
        tokens in prop::collection::vec(any::<u32>(), 0..10),
        starts in prop::collection::vec(0u64..12, 0..6),
        pairs in prop::collection::vec((0u64..8, 0u64..8), 0..4),
    ) {
        let _ = Index::build(&tokens, &starts, &pairs);
    }

    #[test]
    fn packed_rows_roundtrip(r in 0usize..140, c in 0usize..70, seed in any::<u64>()) {
        let data: Vec<bool> = (0..r * c).map(|k| (seed.wrapping_mul(k as u64 + 1) >> 7) & 1 == 1).collect();
        let packed = pack_rows(&data, r, c).unwrap();
        prop_assert_eq!(packed.len(), r * c.div_ceil(8));
        let p = PackedRows::new("m", &packed, r, c).unwrap();
        let b = BitColumns::from_packed(p).unwrap();
        for row in 0..r {
            for col in 0..c {
                prop_assert_eq!(b.get(row, col), data[row * c + col]);
                prop_assert_eq!(p.get(row, col), data[row * c + col]);
            }
        }
        // A buffer of the wrong length is an error.
        prop_assert!(PackedRows::new("m", &packed[..packed.len().saturating_sub(1)], r, c).is_err() || packed.is_empty());
    }
}
