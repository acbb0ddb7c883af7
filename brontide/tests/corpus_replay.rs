//! Replays the fuzz seed corpus (`fuzz/corpus/<target>/`) through the very
//! harnesses the fuzz targets run (`fuzz/src/*.rs`, included by path), so
//! `cargo test` covers them without the fuzzer; then a fixed-seed batch of
//! mutations of each seed, a few hundred per target, as a small stand-in
//! for the fuzzer in CI. Every harness panics if a property breaks: a
//! panic in brontide, an error that is not the typed peer fault the input
//! deserves, or a forged or altered message delivered.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../fuzz/src/handshake.rs"]
mod handshake;

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../fuzz/src/frames.rs"]
mod frames;

use testkit::corpus;

/// The spec's label a seed named after a spec case must fail with.
fn expected_code(name: &str) -> Option<&'static str> {
    const CASES: &[(&str, &str)] = &[
        ("spec_act1_short_read", "ACT1_READ_FAILED"),
        ("spec_act1_bad_version", "ACT1_BAD_VERSION"),
        ("spec_act1_bad_key_serialization", "ACT1_BAD_PUBKEY"),
        ("spec_act1_bad_mac", "ACT1_BAD_TAG"),
        ("spec_act2_short_read", "ACT2_READ_FAILED"),
        ("spec_act2_bad_version", "ACT2_BAD_VERSION"),
        ("spec_act2_bad_key_serialization", "ACT2_BAD_PUBKEY"),
        ("spec_act2_bad_mac", "ACT2_BAD_TAG"),
        ("spec_act3_short_read", "ACT3_READ_FAILED"),
        ("spec_act3_bad_version", "ACT3_BAD_VERSION"),
        ("spec_act3_bad_mac_for_ciphertext", "ACT3_BAD_CIPHERTEXT"),
        ("spec_act3_bad_rs", "ACT3_BAD_PUBKEY"),
        ("spec_act3_bad_mac", "ACT3_BAD_TAG"),
    ];
    CASES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

fn replay_acts(target: &str, harness: fn(&[u8]) -> Result<(), brontide::HandshakeError>) -> usize {
    let seeds = corpus(target);
    for (name, bytes) in &seeds {
        let result = harness(bytes);
        if name == "spec_successful_handshake" {
            assert!(result.is_ok(), "{target}/{name}: {result:?}");
        } else if let Some(code) = expected_code(name) {
            let err = result.expect_err(name);
            assert_eq!(err.code().as_deref(), Some(code), "{target}/{name}");
        } else {
            assert!(result.is_err(), "{target}/{name} was accepted");
        }
    }
    seeds.len()
}

#[test]
fn corpus_replay_responder_act_one_gives_typed_errors() {
    replay_acts("responder_act_one", handshake::responder_act_one);
}

#[test]
fn corpus_replay_responder_act_three_gives_typed_errors() {
    replay_acts("responder_act_three", handshake::responder_act_three);
}

#[test]
fn corpus_replay_initiator_act_two_gives_typed_errors() {
    replay_acts("initiator_act_two", handshake::initiator_act_two);
}

#[test]
fn corpus_replay_decrypt_frames_delivers_only_what_was_sent() {
    let mut clean = 0;
    let mut failed = 0;
    for (name, bytes) in corpus("decrypt_frames") {
        let report = frames::decrypt_frames(&bytes);
        if report.tampered {
            failed += usize::from(report.error.is_some());
        } else {
            assert!(report.error.is_none(), "{name}: {report:?}");
            assert_eq!(report.delivered, report.sent, "{name}");
            clean += 1;
        }
        if name.starts_with("max_message") {
            assert!(
                report.sent >= 1 && report.delivered >= 1,
                "{name}: {report:?}"
            );
        }
    }
    assert!(clean >= 3 && failed >= 3, "clean {clean}, failed {failed}");
}

/// splitmix64: a fixed, dependency-free stream of mutation choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of the kinds libFuzzer makes most: flip a bit, set a byte,
/// insert or erase a byte, truncate, or splice with another seed.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                v.remove(rng.below(v.len()));
            }
            4 => v.truncate(rng.below(v.len() + 1)),
            _ => {
                let cut = rng.below(v.len() + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
        }
    }
    v
}

/// Runs `per_seed` mutations of every seed of `target` through `harness`.
fn replay_mutations(target: &str, per_seed: usize, harness: impl Fn(&[u8])) -> usize {
    let seeds = corpus(target);
    let mut rng = Rng(0x8_fa22);
    let mut runs = 0;
    for (i, (_, seed)) in seeds.iter().enumerate() {
        let other = &seeds[(i + 1) % seeds.len()].1;
        for _ in 0..per_seed {
            harness(&mutate(&mut rng, seed, other));
            runs += 1;
        }
    }
    runs
}

#[test]
fn corpus_replay_mutated_acts_give_typed_errors() {
    let mut runs = 0;
    runs += replay_mutations("responder_act_one", 40, |b| {
        let _ = handshake::responder_act_one(b);
    });
    runs += replay_mutations("responder_act_three", 40, |b| {
        let _ = handshake::responder_act_three(b);
    });
    runs += replay_mutations("initiator_act_two", 40, |b| {
        let _ = handshake::initiator_act_two(b);
    });
    assert!(runs >= 1000, "{runs} runs");
}

#[test]
fn corpus_replay_mutated_frames_deliver_only_what_was_sent() {
    let runs = replay_mutations("decrypt_frames", 30, |b| {
        frames::decrypt_frames(b);
    });
    assert!(runs >= 300, "{runs} runs");
}
