//! BOLT 8 Appendix A: every test vector, one test per case, named after it.
//! The vectors are `tests/data/bolt8.json` (a copy of the spec's data).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use brontide::{
    Decryptor, Encryptor, HandshakeError, Initiator, NodeKeyPair, NodeSigner, PeerFault, PublicKey,
    Responder, SecretKey, SharedSecret, SignerError,
};
use serde_json::Value;

const VECTORS: &str = include_str!("data/bolt8.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("vector file is valid JSON")
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn hex32(s: &str) -> [u8; 32] {
    hex(s).try_into().expect("32 bytes")
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        cur = &cur[*key];
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("missing string at {path:?}"))
}

fn case(group: &str, name: &str) -> Value {
    vectors()[group]
        .as_array()
        .expect("group is an array")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case named {name:?}"))
        .clone()
}

fn secret(s: &str) -> SecretKey {
    SecretKey::from_slice(&hex(s)).expect("valid secret key")
}

fn pubkey(s: &str) -> PublicKey {
    PublicKey::from_slice(&hex(s)).expect("valid public key")
}

/// The final chaining key of the spec's handshake (both sides share it).
fn final_ck() -> [u8; 32] {
    let v = vectors();
    let from_message = str_at(&v["message_tests"][0], &["ck"]);
    let from_trace = str_at(&v["initiator_tests"][0], &["trace", "act3", "ck"]);
    assert_eq!(from_message, from_trace);
    hex32(from_message)
}

/// Proves `enc` holds exactly (ck, k): same frames for 1002 messages, across
/// two key rotations (so the chaining key is checked too).
fn assert_encryptor_is(enc: &mut Encryptor, ck: [u8; 32], k: [u8; 32]) {
    let mut reference = Encryptor::new(ck, k);
    for i in 0..1002u32 {
        let msg = i.to_be_bytes();
        assert_eq!(
            enc.encrypt(&msg).unwrap(),
            reference.encrypt(&msg).unwrap(),
            "message {i}"
        );
    }
}

/// Proves `dec` holds exactly (ck, k) by decrypting 1002 frames made with it.
fn assert_decryptor_is(dec: &mut Decryptor, ck: [u8; 32], k: [u8; 32]) {
    let mut reference = Encryptor::new(ck, k);
    for i in 0..1002u32 {
        let msg = i.to_be_bytes();
        let mut frame = reference.encrypt(&msg).unwrap();
        assert_eq!(
            dec.decrypt_frame(&mut frame).unwrap(),
            &msg[..],
            "message {i}"
        );
    }
}

fn assert_expected_error(c: &Value, err: &HandshakeError) {
    let expected = &c["expected"];
    assert_eq!(expected["result"], "error", "unexpected error {err}");
    assert_eq!(
        err.code().as_deref(),
        expected["code"].as_str(),
        "error was {err}"
    );
    assert_eq!(
        u64::from(err.act().number()),
        expected["at_act"].as_u64().unwrap()
    );
    if let Some(detail) = expected["detail"].as_str() {
        match err.peer_fault() {
            Some(PeerFault::BadVersion(v)) => assert_eq!(v.to_string(), detail),
            other => panic!("detail {detail:?} for fault {other:?}"),
        }
    }
}

/// A signer outside the crate (as an HSM's would be), counting its ECDH
/// calls; `fail` makes every call fail.
struct External {
    key: NodeKeyPair,
    calls: AtomicUsize,
    fail: bool,
}

impl External {
    fn new(secret: SecretKey, fail: bool) -> Arc<Self> {
        Arc::new(External {
            key: NodeKeyPair::new(secret),
            calls: AtomicUsize::new(0),
            fail,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl NodeSigner for External {
    fn node_id(&self) -> PublicKey {
        self.key.public_key()
    }

    fn ecdh(&self, remote: &PublicKey) -> Result<SharedSecret, SignerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(SignerError::new("hsm unplugged"));
        }
        self.key.ecdh(remote)
    }
}

/// Each case runs twice: with the raw key, and through an external signer
/// (which must be asked for the static key's one ECDH exactly when the
/// handshake gets that far).
fn run_initiator(name: &str) {
    let c = case("initiator_tests", name);
    let secret_key = secret(str_at(&c, &["keys", "ls_priv"]));
    run_initiator_with(&c, &NodeKeyPair::new(secret_key));
    let signer = External::new(secret_key, false);
    run_initiator_with(&c, &signer);
    let ok = c["expected"]["result"] == "ok";
    assert_eq!(signer.calls(), usize::from(ok), "static-key ECDH calls");
}

fn run_responder(name: &str) {
    let c = case("responder_tests", name);
    let secret_key = secret(str_at(&c, &["keys", "ls_priv"]));
    run_responder_with(&c, &NodeKeyPair::new(secret_key));
    let signer = External::new(secret_key, false);
    run_responder_with(&c, &signer);
    assert!(signer.calls() <= 1, "static-key ECDH calls");
    if c["expected"]["result"] == "ok" {
        assert_eq!(signer.calls(), 1, "static-key ECDH calls");
    }
}

#[test]
fn a_failing_signer_is_a_local_fault_in_either_role() {
    let init = case(
        "initiator_tests",
        "transport-initiator successful handshake",
    );
    let resp = case(
        "responder_tests",
        "transport-responder successful handshake",
    );
    let signer = External::new(secret(str_at(&init, &["keys", "ls_priv"])), true);
    let remote = pubkey(str_at(&init, &["keys", "rs_pub"]));
    let e = secret(str_at(&init, &["keys", "e_priv"]));
    let (_, awaiting) = Initiator::with_ephemeral(&signer, &remote, &e)
        .unwrap()
        .act_one()
        .unwrap();
    let err = awaiting
        .read_act_two(&hex(str_at(&init, &["acts", "act2_input"])))
        .expect_err("the signer fails");
    assert!(
        matches!(&err, HandshakeError::Signer { error, .. } if error.reason() == "hsm unplugged"),
        "{err}"
    );
    assert_eq!((err.peer_fault(), err.code()), (None, None));

    let signer = External::new(secret(str_at(&resp, &["keys", "ls_priv"])), true);
    let e = secret(str_at(&resp, &["keys", "e_priv"]));
    let err = Responder::with_ephemeral(&signer, &e)
        .unwrap()
        .read_act_one(&hex(str_at(&resp, &["acts", "act1_input"])))
        .expect_err("the signer fails");
    assert!(matches!(err, HandshakeError::Signer { .. }), "{err}");
    assert_eq!(signer.calls(), 1);
}

fn run_initiator_with<L: NodeSigner + Clone>(c: &Value, local: &L) {
    let c = c.clone();
    assert_eq!(local.node_id(), pubkey(str_at(&c, &["keys", "ls_pub"])));
    let remote = pubkey(str_at(&c, &["keys", "rs_pub"]));
    let e = secret(str_at(&c, &["keys", "e_priv"]));

    let initiator = Initiator::with_ephemeral(local, &remote, &e).unwrap();
    let (act_one, awaiting) = initiator.act_one().unwrap();
    assert_eq!(act_one.to_vec(), hex(str_at(&c, &["acts", "act1_output"])));

    match awaiting.read_act_two(&hex(str_at(&c, &["acts", "act2_input"]))) {
        Ok((act_three, mut session)) => {
            assert_eq!(c["expected"]["result"], "ok");
            assert_eq!(
                act_three.to_vec(),
                hex(str_at(&c, &["acts", "act3_output"]))
            );
            assert_eq!(session.remote_pubkey(), remote);
            let ck = final_ck();
            let sk = hex32(str_at(&c, &["expected", "sk"]));
            let rk = hex32(str_at(&c, &["expected", "rk"]));
            assert_encryptor_is(session.encryptor(), ck, sk);
            assert_decryptor_is(session.decryptor(), ck, rk);
        }
        Err(err) => assert_expected_error(&c, &err),
    }
}

fn run_responder_with<L: NodeSigner + Clone>(c: &Value, local: &L) {
    let c = c.clone();
    assert_eq!(local.node_id(), pubkey(str_at(&c, &["keys", "ls_pub"])));
    let e = secret(str_at(&c, &["keys", "e_priv"]));

    let responder = Responder::with_ephemeral(local, &e).unwrap();
    let (act_two, awaiting) =
        match responder.read_act_one(&hex(str_at(&c, &["acts", "act1_input"]))) {
            Ok(ok) => ok,
            Err(err) => return assert_expected_error(&c, &err),
        };
    assert_eq!(act_two.to_vec(), hex(str_at(&c, &["acts", "act2_output"])));

    match awaiting.read_act_three(&hex(str_at(&c, &["acts", "act3_input"]))) {
        Ok(mut session) => {
            assert_eq!(c["expected"]["result"], "ok");
            let initiator = case(
                "initiator_tests",
                "transport-initiator successful handshake",
            );
            assert_eq!(
                session.remote_pubkey(),
                pubkey(str_at(&initiator, &["keys", "ls_pub"]))
            );
            let ck = final_ck();
            let sk = hex32(str_at(&c, &["expected", "sk"]));
            let rk = hex32(str_at(&c, &["expected", "rk"]));
            assert_encryptor_is(session.encryptor(), ck, sk);
            assert_decryptor_is(session.decryptor(), ck, rk);
        }
        Err(err) => assert_expected_error(&c, &err),
    }
}

fn run_message(index: usize) {
    let c = &vectors()["message_tests"][0];
    let ck = hex32(str_at(c, &["ck"]));
    let sk = hex32(str_at(c, &["sk"]));
    let plaintext = hex(str_at(c, &["plaintext"]));
    let expected = hex(str_at(c, &["outputs", &index.to_string()]));

    let mut enc = Encryptor::new(ck, sk);
    let mut dec = Decryptor::new(ck, sk);
    for i in 0..=index {
        let mut frame = enc.encrypt(&plaintext).unwrap();
        if i == index {
            assert_eq!(frame, expected, "message {index}");
        }
        assert_eq!(dec.decrypt_frame(&mut frame).unwrap(), &plaintext[..]);
    }
}

macro_rules! initiator_cases {
    ($($test:ident => $name:literal,)*) => {
        $(#[test] fn $test() { run_initiator($name) })*
        const INITIATOR_CASES: &[&str] = &[$($name),*];
    };
}

macro_rules! responder_cases {
    ($($test:ident => $name:literal,)*) => {
        $(#[test] fn $test() { run_responder($name) })*
        const RESPONDER_CASES: &[&str] = &[$($name),*];
    };
}

initiator_cases! {
    transport_initiator_successful_handshake => "transport-initiator successful handshake",
    transport_initiator_act2_short_read_test => "transport-initiator act2 short read test",
    transport_initiator_act2_bad_version_test => "transport-initiator act2 bad version test",
    transport_initiator_act2_bad_key_serialization_test => "transport-initiator act2 bad key serialization test",
    transport_initiator_act2_bad_mac_test => "transport-initiator act2 bad MAC test",
}

responder_cases! {
    transport_responder_successful_handshake => "transport-responder successful handshake",
    transport_responder_act1_short_read_test => "transport-responder act1 short read test",
    transport_responder_act1_bad_version_test => "transport-responder act1 bad version test",
    transport_responder_act1_bad_key_serialization_test => "transport-responder act1 bad key serialization test",
    transport_responder_act1_bad_mac_test => "transport-responder act1 bad MAC test",
    transport_responder_act3_bad_version_test => "transport-responder act3 bad version test",
    transport_responder_act3_short_read_test => "transport-responder act3 short read test",
    transport_responder_act3_bad_mac_for_ciphertext_test => "transport-responder act3 bad MAC for ciphertext test",
    transport_responder_act3_bad_rs_test => "transport-responder act3 bad rs test",
    transport_responder_act3_bad_mac_test => "transport-responder act3 bad MAC test",
}

#[test]
fn transport_message_test_message_0() {
    run_message(0)
}

#[test]
fn transport_message_test_message_1() {
    run_message(1)
}

#[test]
fn transport_message_test_message_500() {
    run_message(500)
}

#[test]
fn transport_message_test_message_501() {
    run_message(501)
}

#[test]
fn transport_message_test_message_1000() {
    run_message(1000)
}

#[test]
fn transport_message_test_message_1001() {
    run_message(1001)
}

/// Every case in the file has its own test above (and no test names a case
/// that is not in the file).
#[test]
fn every_vector_case_has_a_test() {
    let v = vectors();
    let names = |group: &str| -> Vec<String> {
        v[group]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("initiator_tests"), INITIATOR_CASES);
    assert_eq!(names("responder_tests"), RESPONDER_CASES);
    assert_eq!(INITIATOR_CASES.len() + RESPONDER_CASES.len(), 15);
    let outputs: Vec<&String> = v["message_tests"][0]["outputs"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(outputs.len(), 6);
}
