//! Replays the address fuzz seeds (`fuzz/corpus/parse_address/`) through
//! the harness the fuzz target runs (`fuzz/src/address.rs`, included by
//! path): nothing panics, accepted addresses print and parse back to
//! themselves, `key@text` agrees with `text`, and errors are typed.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../fuzz/src/address.rs"]
mod address;

use std::fs;
use std::path::PathBuf;

use server::AddressError;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
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

#[test]
fn corpus_replay_parse_address_round_trips_and_types_errors() {
    let mut accepted = 0;
    for (name, bytes) in corpus("parse_address") {
        let report = address::parse_address(&bytes);
        // Seeds named after a valid form parse; the malformed ones give the
        // error their name says.
        let net_ok = [
            "ipv4_port",
            "ipv4_no_port",
            "ipv6_brackets",
            "ipv6_bare",
            "ipv6_brackets_no_port",
            "ipv4_mapped",
            "host_port",
            "host_trailing_dot",
        ];
        if net_ok.contains(&name.as_str()) {
            assert!(report.net.is_ok(), "{name}: {:?}", report.net);
            accepted += 1;
        }
        if name.starts_with("node_") && name != "node_no_at" {
            assert!(report.node.is_ok(), "{name}: {:?}", report.node);
        }
        let net_err = report.net.as_ref().err();
        let expect = |ok: bool| assert!(ok, "{name}: {:?}", report.net);
        match name.as_str() {
            "empty" => expect(net_err == Some(&AddressError::Empty)),
            "port_zero" | "port_too_big" | "port_empty" => {
                expect(matches!(net_err, Some(AddressError::BadPort(_))))
            }
            "ipv6_unclosed" | "ipv6_junk_after" | "scoped_ipv6" => {
                expect(matches!(net_err, Some(AddressError::BadIpv6(_))))
            }
            "host_space"
            | "host_leading_hyphen"
            | "ipv4_bad_octet"
            | "label_64"
            | "name_256"
            | "unicode_host" => expect(matches!(net_err, Some(AddressError::BadHost(_)))),
            "node_no_at" => assert_eq!(report.node.as_ref().err(), Some(&AddressError::MissingAt)),
            "bad_key" | "key_not_on_curve" => assert!(
                matches!(report.node, Err(AddressError::BadPubkey(_))),
                "{name}: {:?}",
                report.node
            ),
            _ => {}
        }
    }
    assert!(accepted >= 8, "{accepted} accepted");
}
