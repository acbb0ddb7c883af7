//! Replays the address fuzz seeds (`fuzz/corpus/parse_address/` and
//! `fuzz/corpus/address_descriptors/`, under this crate) through the harness
//! the fuzz targets run (`fuzz/src/address.rs`, included by path): nothing panics, accepted addresses print and parse back to
//! themselves, `key@text` agrees with `text`, and errors are typed.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../fuzz/src/address.rs"]
mod address;

use lnaddr::AddressError;

/// The named seeds of `fuzz/corpus/<target>/`, sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("a readable seed"))
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
            "scoped_ipv6_numeric",
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

#[test]
fn corpus_replay_address_descriptors_round_trip_and_type_errors() {
    let seeds = corpus("address_descriptors");
    for (name, bytes) in &seeds {
        let report = address::read_descriptors(bytes);
        let first = report.first.as_ref().map(|(a, _)| a.clone());
        let list_len = report.list.as_ref().map(Vec::len);
        let ok = |done: bool| assert!(done, "{name}: {report:?}");
        match name.as_str() {
            "ipv4" | "ipv6" | "onion_v3" | "dns" | "dns_upper" => {
                ok(first.is_ok() && list_len == Ok(1))
            }
            "list_all_kinds" => ok(list_len == Ok(4)),
            "onion_v2_skipped" | "unknown_type_stops" => ok(list_len == Ok(1)),
            "empty" => ok(first == Err(&AddressError::Empty) && list_len == Ok(0)),
            "truncated_ipv6" | "dns_len_past_end" => {
                ok(matches!(first, Err(AddressError::Truncated { .. })))
            }
            "port_zero" => ok(matches!(first, Err(AddressError::BadPort(_))) && list_len == Ok(0)),
            "port_zero_then_ipv4" => {
                ok(matches!(first, Err(AddressError::BadPort(_))) && list_len == Ok(1))
            }
            "dns_onion_name" | "dns_not_utf8" => ok(matches!(first, Err(AddressError::BadHost(_)))),
            "onion_bad_version" => ok(matches!(first, Err(AddressError::OnionVersion(_)))),
            "onion_bad_checksum" => ok(matches!(first, Err(AddressError::OnionChecksum { .. }))),
            "dns_twice" => ok(first.is_ok() && report.list == Err(AddressError::MoreThanOneHost)),
            other => panic!("a seed without an expectation: {other}"),
        }
    }
    // A seeded batch of byte mutations of every seed, as a small stand-in
    // for the fuzzer.
    let mut state = 0x0add_u64;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for (_, seed) in &seeds {
        for _ in 0..200 {
            let mut v = seed.clone();
            for _ in 0..=next() % 3 {
                let at = (next() as usize) % (v.len() + 1);
                match next() % 3 {
                    0 if at < v.len() => v[at] ^= 1 << (next() % 8),
                    1 => v.insert(at, next() as u8),
                    _ => v.truncate(at),
                }
            }
            address::read_descriptors(&v);
            address::parse_address(&v);
        }
    }
}
