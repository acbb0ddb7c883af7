//! The logic of the fuzz targets, shared with the corpus replay tests.
//!
//! Each harness takes arbitrary bytes, drives one parser of peer or user
//! input with them, and panics only if a property is broken: a panic in the
//! code under test, an error that is not the typed peer fault the input
//! deserves, or an accepted input that does not behave as accepted input
//! must. The fuzz targets in `fuzz_targets/` call these; the crates' tests
//! (`brontide/tests/corpus_replay.rs`; the address harness is lnaddr's, in
//! `lnaddr/fuzz/`)
//! include the same files with `#[path]` and replay `corpus/<target>/`, so
//! CI runs the seeds without the fuzzer.

pub mod bolt1;
pub mod frames;
pub mod handshake;
