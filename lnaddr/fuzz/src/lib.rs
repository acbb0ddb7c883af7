//! The logic of lnaddr's fuzz targets, shared with its corpus replay test.
//!
//! Each harness takes arbitrary bytes, drives one parser with them, and
//! panics only if a property is broken. The targets in `fuzz_targets/` call
//! these; `lnaddr/tests/corpus_replay.rs` includes the same file with
//! `#[path]` and replays `corpus/<target>/`, so CI runs the seeds without
//! the fuzzer.

pub mod address;
