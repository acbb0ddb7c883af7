//! The fuzz targets' seed corpus, for tests that replay it without the
//! fuzzer.

use std::fs;
use std::path::PathBuf;

/// The seed files of fuzz target `target` (`fuzz/corpus/<target>/` at the
/// workspace root), as (file name, bytes), sorted by name.
///
/// # Panics
///
/// If the folder cannot be read, or holds fewer than five seeds (a corpus
/// that small means the files went missing).
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            (name, fs::read(&path).expect("a readable seed"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{target}: only {} seeds", files.len());
    files
}
