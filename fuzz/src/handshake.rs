//! Handshake harnesses: the spec's keys (BOLT 8 Appendix A), one act from
//! the fuzzer.
//!
//! Both ephemeral keys are the spec's, so the spec's acts are valid inputs
//! here and the fuzzer starts from (and mutates) a complete handshake.

use brontide::{
    Act, AwaitingActThree, AwaitingActTwo, HandshakeError, Initiator, NodeKeyPair, PeerFault,
    Responder, SecretKey, Session, ACT_ONE_LEN,
};

fn secret(byte: u8) -> SecretKey {
    // Invariant: 0x11, 0x12, 0x21 and 0x22 repeated are valid scalars.
    SecretKey::from_slice(&[byte; 32]).expect("a valid scalar")
}

/// The spec initiator's static key (`ls_priv` = 0x11...).
pub fn initiator_keys() -> NodeKeyPair {
    NodeKeyPair::new(secret(0x11))
}

/// The spec responder's static key (`ls_priv` = 0x21...).
pub fn responder_keys() -> NodeKeyPair {
    NodeKeyPair::new(secret(0x21))
}

/// The spec initiator after act one (ephemeral 0x12...), and its act one.
pub fn spec_initiator() -> ([u8; ACT_ONE_LEN], AwaitingActTwo) {
    Initiator::with_ephemeral(
        &initiator_keys(),
        &responder_keys().public_key(),
        &secret(0x12),
    )
    .and_then(Initiator::act_one)
    // Invariant: fixed valid keys; only an internal snow error could fail.
    .expect("the spec initiator builds")
}

/// The spec responder before act one (ephemeral 0x22...).
pub fn spec_responder() -> Responder {
    Responder::with_ephemeral(&responder_keys(), &secret(0x22)).expect("the spec responder builds")
}

/// The spec responder after reading the spec's act one.
pub fn spec_responder_after_act_one() -> AwaitingActThree {
    let (act_one, _) = spec_initiator();
    let (_, awaiting) = spec_responder()
        .read_act_one(&act_one)
        .expect("the spec's act one is valid");
    awaiting
}

/// A complete in-memory handshake with the spec's keys: (initiator's
/// session, responder's session). Deterministic.
pub fn spec_sessions() -> (Session, Session) {
    let (act_one, initiator) = spec_initiator();
    let (act_two, responder) = spec_responder()
        .read_act_one(&act_one)
        .expect("the spec's act one is valid");
    let (act_three, initiator) = initiator
        .read_act_two(&act_two)
        .expect("the spec's act two is valid");
    let responder = responder
        .read_act_three(&act_three)
        .expect("the spec's act three is valid");
    (initiator, responder)
}

/// Checks that an error caused by the peer's bytes `input` for `act` is a
/// typed peer fault in that act, and the fault the input deserves.
///
/// # Panics
/// If it is a local fault, names another act, or does not match the input.
pub fn check_peer_error(act: Act, input: &[u8], err: &HandshakeError) {
    assert_eq!(err.act(), act, "error names the wrong act: {err}");
    let Some(fault) = err.peer_fault() else {
        panic!("peer bytes caused a local error: {err}");
    };
    let code = err.code().expect("a peer fault has a spec code");
    assert!(code.starts_with(&format!("ACT{}_", act.number())), "{code}");
    let _ = err.to_string();
    let wire_len = act.wire_len();
    match fault {
        PeerFault::ReadFailed { expected, got } => {
            assert_eq!(expected, wire_len);
            assert_eq!(got, input.len());
            assert_ne!(
                input.len(),
                wire_len,
                "a full-length act is not a short read"
            );
        }
        PeerFault::BadVersion(v) => {
            assert_eq!(input.len(), wire_len, "length is checked before version");
            assert_ne!(v, 0);
            assert_eq!(input[0], v);
        }
        PeerFault::BadPubkey | PeerFault::BadTag | PeerFault::BadCiphertext => {
            assert_eq!(input.len(), wire_len, "length is checked first");
            assert_eq!(input[0], 0, "version is checked before the content");
            if act != Act::Three {
                assert_ne!(fault, PeerFault::BadCiphertext, "only act three has one");
            }
        }
        other => panic!("unexpected fault {other:?}"),
    }
}

/// The responder fed an arbitrary act one.
///
/// # Errors
/// The typed handshake error (checked by [`check_peer_error`]).
pub fn responder_act_one(data: &[u8]) -> Result<(), HandshakeError> {
    match spec_responder().read_act_one(data) {
        Ok((act_two, _)) => {
            assert_eq!(
                data.len(),
                ACT_ONE_LEN,
                "accepted an act one of the wrong length"
            );
            assert_eq!(data[0], 0, "accepted a bad version");
            assert_eq!(act_two[0], 0);
            Ok(())
        }
        Err(err) => {
            check_peer_error(Act::One, data, &err);
            Err(err)
        }
    }
}

/// The responder, after the spec's act one, fed an arbitrary act three.
///
/// # Errors
/// The typed handshake error (checked by [`check_peer_error`]).
pub fn responder_act_three(data: &[u8]) -> Result<(), HandshakeError> {
    match spec_responder_after_act_one().read_act_three(data) {
        Ok(mut session) => {
            assert_eq!(data.len(), Act::Three.wire_len());
            assert_eq!(data[0], 0);
            // Only the spec initiator can authenticate act three here.
            assert_eq!(session.remote_pubkey(), initiator_keys().public_key());
            round_trip(&mut session);
            Ok(())
        }
        Err(err) => {
            check_peer_error(Act::Three, data, &err);
            Err(err)
        }
    }
}

/// The initiator, after its act one, fed an arbitrary act two.
///
/// # Errors
/// The typed handshake error (checked by [`check_peer_error`]).
pub fn initiator_act_two(data: &[u8]) -> Result<(), HandshakeError> {
    let (_, initiator) = spec_initiator();
    match initiator.read_act_two(data) {
        Ok((act_three, mut session)) => {
            assert_eq!(data.len(), Act::Two.wire_len());
            assert_eq!(data[0], 0);
            assert_eq!(act_three[0], 0);
            assert_eq!(session.remote_pubkey(), responder_keys().public_key());
            round_trip(&mut session);
            Ok(())
        }
        Err(err) => {
            check_peer_error(Act::Two, data, &err);
            Err(err)
        }
    }
}

/// A session that came out of a handshake encrypts a message its own
/// cipher states can be checked with: a frame has the right length.
fn round_trip(session: &mut Session) {
    let frame = session
        .encryptor()
        .encrypt(b"fuzz")
        .expect("a short message fits");
    assert_eq!(frame.len(), brontide::frame_len(4));
}
