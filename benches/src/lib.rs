//! Criterion benchmarks for the workspace. The benches live in `benches/`;
//! this library is empty. Run them with `cargo bench -p benches`.
