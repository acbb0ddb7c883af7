//! The in-memory handshake workloads shared by `brontide.rs` (timed) and
//! `handshake_count.rs` (instruction counts): ours, both sides and the
//! responder alone, and their secp256k1 floors.

use std::hint::black_box;

use bitcoin::secp256k1::ecdh::SharedSecret;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use brontide::{Initiator, NodeKeyPair, Responder, ACT_ONE_LEN, ACT_THREE_LEN};

/// One of the measured workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Our full handshake, both sides.
    Both,
    /// Our responder alone, from recorded acts one and three.
    Responder,
    /// 2 key generations, 6 ECDH, 3 public-key parses.
    Floor,
    /// The responder's share: 1 key generation, 3 ECDH, 2 parses.
    ResponderFloor,
    /// The handshake written out without snow ([`reference`]), both sides.
    Reference,
    /// Its responder alone, from recorded acts one and three.
    ReferenceResponder,
}

impl Workload {
    /// The workload named on a command line.
    #[allow(dead_code)] // Used by handshake_count.rs and tests/reference.rs only.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "both" => Workload::Both,
            "responder" => Workload::Responder,
            "floor" => Workload::Floor,
            "responder_floor" => Workload::ResponderFloor,
            "reference" => Workload::Reference,
            "reference_responder" => Workload::ReferenceResponder,
            _ => return None,
        })
    }
}

fn sk(byte: u8) -> SecretKey {
    // Invariant: 32 repeated bytes 0x01..=0x7f are a valid scalar.
    SecretKey::from_slice(&[byte; 32]).expect("valid scalar")
}

/// Fixed keys (static and ephemeral) and the acts they produce.
pub(crate) struct Fixture {
    alice: NodeKeyPair,
    bob: NodeKeyPair,
    bob_id: PublicKey,
    ea: SecretKey,
    eb: SecretKey,
    secp: Secp256k1<bitcoin::secp256k1::All>,
    wire_ea: [u8; 33],
    wire_eb: [u8; 33],
    wire_sa: [u8; 33],
    act_one: [u8; ACT_ONE_LEN],
    act_three: [u8; ACT_THREE_LEN],
    prefix: reference::Prefix,
    /// The reference responder's hash after its own key (kept, as ours is).
    bob_h: [u8; 32],
}

impl Fixture {
    /// Alice (0x11, ephemeral 0x12) dials Bob (0x21, ephemeral 0x22).
    pub(crate) fn new() -> Self {
        let alice = NodeKeyPair::new(sk(0x11));
        let bob = NodeKeyPair::new(sk(0x21));
        let bob_id = bob.public_key();
        let (ea, eb) = (sk(0x12), sk(0x22));
        let secp = Secp256k1::new();
        let wire_ea = PublicKey::from_secret_key(&secp, &ea).serialize();
        let wire_eb = PublicKey::from_secret_key(&secp, &eb).serialize();
        let wire_sa = alice.public_key().serialize();
        // The responder's ephemeral key is fixed, so act two, and with it
        // act three, are the same in every run: record them once.
        let (act_one, initiator) = Initiator::with_ephemeral(&alice, &bob_id, &ea)
            .and_then(Initiator::act_one)
            .expect("act one");
        let (act_two, _) = Responder::with_ephemeral(&bob, &eb)
            .and_then(|r| r.read_act_one(&act_one))
            .expect("act two");
        let (act_three, mut session) = initiator.read_act_two(&act_two).expect("act three");
        // The reference makes the same acts, byte for byte, and the same
        // session: the same frames, before and after the first key rotation
        // (at 1000 uses of a key, two per message).
        let prefix = reference::Prefix::new();
        let bob_h = prefix.premessage(&bob_id);
        let (ref_one, i) = reference::act_one(&prefix, &secp, &ea, &bob_id);
        let (ref_two, r) =
            reference::act_two(&prefix, bob_h, &secp, bob.secret_key(), &eb, &ref_one);
        let (ref_three, ck, i_sk, i_rk) =
            reference::act_three(i, alice.secret_key(), &alice.public_key(), &ref_two);
        let (ref_sa, r_sk, r_rk) = reference::read_act_three(r, &ref_three);
        assert_eq!((ref_one, ref_two, ref_three), (act_one, act_two, act_three));
        assert_eq!((ref_sa, i_sk, i_rk), (alice.public_key(), r_rk, r_sk));
        let mut theirs = brontide::Encryptor::new(ck, i_sk);
        for n in 0..501 {
            let msg = [n as u8; 4];
            let ours = session.encryptor().encrypt(&msg).expect("small");
            assert_eq!(ours, theirs.encrypt(&msg).expect("small"), "frame {n}");
        }
        Fixture {
            alice,
            bob,
            bob_id,
            ea,
            eb,
            secp,
            wire_ea,
            wire_eb,
            wire_sa,
            act_one,
            act_three,
            prefix,
            bob_h,
        }
    }

    /// Runs `workload` once.
    pub(crate) fn run(&self, workload: Workload) {
        match workload {
            Workload::Both => self.both(),
            Workload::Responder => self.responder(),
            Workload::Floor => self.floor(),
            Workload::ResponderFloor => self.responder_floor(),
            Workload::Reference => self.reference(),
            Workload::ReferenceResponder => self.reference_responder(),
        }
    }

    fn both(&self) {
        let (act_one, alice) = Initiator::with_ephemeral(&self.alice, &self.bob_id, &self.ea)
            .and_then(Initiator::act_one)
            .expect("act one");
        let (act_two, bob) = Responder::with_ephemeral(&self.bob, &self.eb)
            .and_then(|r| r.read_act_one(&act_one))
            .expect("act two");
        let (act_three, alice_session) = alice.read_act_two(&act_two).expect("act three");
        let bob_session = bob.read_act_three(&act_three).expect("session");
        black_box((alice_session, bob_session));
    }

    fn responder(&self) {
        let (act_two, bob) = Responder::with_ephemeral(&self.bob, &self.eb)
            .and_then(|r| r.read_act_one(black_box(&self.act_one)))
            .expect("act two");
        black_box(act_two);
        let session = bob
            .read_act_three(black_box(&self.act_three))
            .expect("session");
        black_box(session);
    }

    fn floor(&self) {
        let (secp, ea, eb) = (&self.secp, &self.ea, &self.eb);
        let (sa, sb) = (self.alice.secret_key(), self.bob.secret_key());
        // Initiator: its ephemeral key, es.
        let pub_ea = PublicKey::from_secret_key(secp, black_box(ea));
        let es_i = SharedSecret::new(black_box(&self.bob_id), ea);
        // Responder: parse e_A, es; its ephemeral key, ee.
        let r_ea = PublicKey::from_slice(black_box(&self.wire_ea)).expect("e_A");
        let es_r = SharedSecret::new(&r_ea, sb);
        let pub_eb = PublicKey::from_secret_key(secp, black_box(eb));
        let ee_r = SharedSecret::new(&r_ea, eb);
        // Initiator: parse e_B, ee, se.
        let i_eb = PublicKey::from_slice(black_box(&self.wire_eb)).expect("e_B");
        let ee_i = SharedSecret::new(&i_eb, ea);
        let se_i = SharedSecret::new(&i_eb, sa);
        // Responder: parse s_A, se.
        let r_sa = PublicKey::from_slice(black_box(&self.wire_sa)).expect("s_A");
        let se_r = SharedSecret::new(&r_sa, eb);
        black_box((pub_ea, pub_eb, es_i, es_r, ee_r, ee_i, se_i, se_r));
    }

    fn reference(&self) {
        let (secp, p) = (&self.secp, &self.prefix);
        let (act_one, i) = reference::act_one(p, secp, &self.ea, &self.bob_id);
        let (act_two, r) = reference::act_two(
            p,
            self.bob_h,
            secp,
            self.bob.secret_key(),
            &self.eb,
            &act_one,
        );
        let sa = self.alice.public_key();
        let (act_three, ck, i_sk, i_rk) =
            reference::act_three(i, self.alice.secret_key(), &sa, &act_two);
        black_box((reference::read_act_three(r, &act_three), ck, i_sk, i_rk));
    }

    fn reference_responder(&self) {
        let (act_two, r) = reference::act_two(
            &self.prefix,
            self.bob_h,
            &self.secp,
            self.bob.secret_key(),
            &self.eb,
            black_box(&self.act_one),
        );
        black_box(act_two);
        black_box(reference::read_act_three(r, black_box(&self.act_three)));
    }

    fn responder_floor(&self) {
        let (secp, eb) = (&self.secp, &self.eb);
        let sb = self.bob.secret_key();
        let r_ea = PublicKey::from_slice(black_box(&self.wire_ea)).expect("e_A");
        let es_r = SharedSecret::new(&r_ea, sb);
        let pub_eb = PublicKey::from_secret_key(secp, black_box(eb));
        let ee_r = SharedSecret::new(&r_ea, eb);
        let r_sa = PublicKey::from_slice(black_box(&self.wire_sa)).expect("s_A");
        let se_r = SharedSecret::new(&r_sa, eb);
        black_box((pub_eb, es_r, ee_r, se_r));
    }
}

/// BOLT 8's handshake written out by hand, without snow: the reference for
/// what the protocol itself costs over the secp256k1 floor with the same
/// primitives as brontide (`bitcoin_hashes`' SHA-256 with its SHA
/// extensions, padded in place, HMAC keys kept as pad states, the
/// constant prefix hashed once, ring's ChaCha20-Poly1305, and ECDH as the
/// point hashed here, its copy in the engine overwritten). Not a product:
/// no error paths beyond `expect`, no version checks, no erasing of pads and
/// intermediate keys (a few small writes), and only what the workloads
/// need. [`Fixture::new`] checks that its acts and session are ours.
pub(crate) mod reference {
    use bitcoin::hashes::{sha256, HashEngine};
    use bitcoin::secp256k1::ecdh::shared_secret_point;
    use bitcoin::secp256k1::{All, PublicKey, Secp256k1, SecretKey};
    use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};

    const BLOCK: usize = 64;

    /// SHA-256 of what `engine` holds (whole blocks) then `tail`, padded in
    /// place.
    fn finish(mut engine: sha256::HashEngine, tail: &[u8]) -> [u8; 32] {
        let bits = ((engine.n_bytes_hashed() + tail.len()) as u64) * 8;
        let mut buf = [0u8; 2 * BLOCK];
        let padded = if tail.len() + 9 > BLOCK {
            2 * BLOCK
        } else {
            BLOCK
        };
        buf[..tail.len()].copy_from_slice(tail);
        buf[tail.len()] = 0x80;
        buf[padded - 8..padded].copy_from_slice(&bits.to_be_bytes());
        engine.input(&buf[..padded]);
        engine.midstate().to_byte_array()
    }

    /// `SHA-256(h || data)`, Noise's MixHash (`data` ≤ 87 bytes).
    fn mix(h: &[u8; 32], data: &[u8]) -> [u8; 32] {
        let mut input = [0u8; 32 + 87];
        input[..32].copy_from_slice(h);
        input[32..32 + data.len()].copy_from_slice(data);
        finish(sha256::HashEngine::default(), &input[..32 + data.len()])
    }

    /// An HMAC-SHA256 key as its two pad states.
    #[derive(Clone)]
    struct Hmac {
        inner: sha256::HashEngine,
        outer: sha256::HashEngine,
    }

    impl Hmac {
        fn new(key: &[u8; 32]) -> Self {
            let mut pad = [0x36u8; BLOCK];
            pad.iter_mut().zip(key).for_each(|(p, k)| *p ^= k);
            let mut inner = sha256::HashEngine::default();
            inner.input(&pad);
            pad.iter_mut().for_each(|p| *p ^= 0x36 ^ 0x5c);
            let mut outer = sha256::HashEngine::default();
            outer.input(&pad);
            Hmac { inner, outer }
        }

        fn mac(&self, message: &[u8]) -> [u8; 32] {
            let digest = finish(self.inner.clone(), message);
            finish(self.outer.clone(), &digest)
        }
    }

    /// Noise's HKDF with two outputs.
    fn hkdf(salt: &Hmac, ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
        let prk = Hmac::new(&salt.mac(ikm));
        let out1 = prk.mac(&[1]);
        let mut input = [2u8; 33];
        input[..32].copy_from_slice(&out1);
        (out1, prk.mac(&input))
    }

    fn nonce(n: u64) -> Nonce {
        let mut bytes = [0u8; 12];
        bytes[4..].copy_from_slice(&n.to_le_bytes());
        Nonce::assume_unique_for_key(bytes)
    }

    fn aead(key: &[u8; 32]) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("key"))
    }

    /// Encrypts `plain` into `out` (`plain.len() + 16` bytes) under `ad`.
    fn seal(key: &[u8; 32], n: u64, ad: &[u8; 32], plain: &[u8], out: &mut [u8]) {
        let (body, tag) = out.split_at_mut(plain.len());
        body.copy_from_slice(plain);
        let t = aead(key)
            .seal_in_place_separate_tag(nonce(n), Aad::from(ad), body)
            .expect("seal");
        tag.copy_from_slice(t.as_ref());
    }

    /// Decrypts `sealed` (body then tag) into `out` under `ad`.
    fn open(key: &[u8; 32], n: u64, ad: &[u8; 32], sealed: &[u8], out: &mut [u8]) {
        let (body, tag) = sealed.split_at(sealed.len() - 16);
        out.copy_from_slice(body);
        let tag: [u8; 16] = tag.try_into().expect("tag");
        aead(key)
            .open_in_place_separate_tag(nonce(n), Aad::from(ad), Tag::from(tag), out, 0..)
            .expect("open");
    }

    /// As brontide's: the point hashed here, and the engine's copy of it
    /// overwritten (one more block).
    fn ecdh(point: &PublicKey, scalar: &SecretKey) -> [u8; 32] {
        let xy = shared_secret_point(point, scalar);
        let mut block = [0u8; BLOCK];
        block[0] = 0x02 | (xy[63] & 1);
        block[1..33].copy_from_slice(&xy[..32]);
        block[33] = 0x80;
        block[BLOCK - 8..].copy_from_slice(&(33u64 * 8).to_be_bytes());
        let mut engine = sha256::HashEngine::default();
        engine.input(&block);
        let secret = engine.midstate().to_byte_array();
        engine.input(&[0; BLOCK]);
        std::hint::black_box(&engine);
        secret
    }

    /// The constant prefix: `h` after the prologue, the first salt's pads,
    /// and (for a responder) `h` after its own static key.
    pub(crate) struct Prefix {
        h1: [u8; 32],
        ck0: Hmac,
    }

    impl Prefix {
        pub(crate) fn new() -> Self {
            let h0 = finish(
                sha256::HashEngine::default(),
                b"Noise_XK_secp256k1_ChaChaPoly_SHA256",
            );
            Prefix {
                h1: mix(&h0, b"lightning"),
                ck0: Hmac::new(&h0),
            }
        }

        /// `h` after the responder's static key `rs` (the pre-message).
        pub(crate) fn premessage(&self, rs: &PublicKey) -> [u8; 32] {
            mix(&self.h1, &rs.serialize())
        }
    }

    /// The initiator between act one and act two.
    pub(crate) struct Initiator {
        h: [u8; 32],
        ck: [u8; 32],
        e: SecretKey,
    }

    /// The responder between act two and act three.
    pub(crate) struct Responder {
        h: [u8; 32],
        ck: [u8; 32],
        temp_k2: [u8; 32],
        e: SecretKey,
    }

    /// Act one, from the initiator's ephemeral key `e` to the responder `rs`.
    pub(crate) fn act_one(
        p: &Prefix,
        secp: &Secp256k1<All>,
        e: &SecretKey,
        rs: &PublicKey,
    ) -> ([u8; 50], Initiator) {
        let h = p.premessage(rs);
        let e_pub = PublicKey::from_secret_key(secp, e).serialize();
        let h = mix(&h, &e_pub);
        let (ck, temp_k1) = hkdf(&p.ck0, &ecdh(rs, e));
        let mut act = [0u8; 50];
        act[1..34].copy_from_slice(&e_pub);
        seal(&temp_k1, 0, &h, &[], &mut act[34..]);
        let h = mix(&h, &act[34..]);
        (act, Initiator { h, ck, e: *e })
    }

    /// Act two, by the responder `s` (whose pre-message hash is `h`) with
    /// ephemeral key `e`.
    pub(crate) fn act_two(
        p: &Prefix,
        h: [u8; 32],
        secp: &Secp256k1<All>,
        s: &SecretKey,
        e: &SecretKey,
        act_one: &[u8; 50],
    ) -> ([u8; 50], Responder) {
        let re = PublicKey::from_slice(&act_one[1..34]).expect("e_A");
        let h = mix(&h, &act_one[1..34]);
        let (ck, temp_k1) = hkdf(&p.ck0, &ecdh(&re, s));
        open(&temp_k1, 0, &h, &act_one[34..], &mut []);
        let h = mix(&h, &act_one[34..]);
        let e_pub = PublicKey::from_secret_key(secp, e).serialize();
        let h = mix(&h, &e_pub);
        let (ck, temp_k2) = hkdf(&Hmac::new(&ck), &ecdh(&re, e));
        let mut act = [0u8; 50];
        act[1..34].copy_from_slice(&e_pub);
        seal(&temp_k2, 0, &h, &[], &mut act[34..]);
        let h = mix(&h, &act[34..]);
        (
            act,
            Responder {
                h,
                ck,
                temp_k2,
                e: *e,
            },
        )
    }

    /// Act three, by the initiator `s` (public `s_pub`): the act, the final
    /// chaining key and the session's two keys (sending, receiving).
    pub(crate) fn act_three(
        i: Initiator,
        s: &SecretKey,
        s_pub: &PublicKey,
        act_two: &[u8; 50],
    ) -> ([u8; 66], [u8; 32], [u8; 32], [u8; 32]) {
        let re = PublicKey::from_slice(&act_two[1..34]).expect("e_B");
        let h = mix(&i.h, &act_two[1..34]);
        let (ck, temp_k2) = hkdf(&Hmac::new(&i.ck), &ecdh(&re, &i.e));
        open(&temp_k2, 0, &h, &act_two[34..], &mut []);
        let h = mix(&h, &act_two[34..]);
        let mut act = [0u8; 66];
        seal(&temp_k2, 1, &h, &s_pub.serialize(), &mut act[1..50]);
        let h = mix(&h, &act[1..50]);
        let (ck, temp_k3) = hkdf(&Hmac::new(&ck), &ecdh(&re, s));
        seal(&temp_k3, 0, &h, &[], &mut act[50..]);
        let (sk, rk) = hkdf(&Hmac::new(&ck), &[]);
        (act, ck, sk, rk)
    }

    /// The responder reads act three: the initiator's key and the session's
    /// two keys (sending, receiving).
    pub(crate) fn read_act_three(
        r: Responder,
        act_three: &[u8; 66],
    ) -> (PublicKey, [u8; 32], [u8; 32]) {
        let mut rs = [0u8; 33];
        open(&r.temp_k2, 1, &r.h, &act_three[1..50], &mut rs);
        let h = mix(&r.h, &act_three[1..50]);
        let rs = PublicKey::from_slice(&rs).expect("s_A");
        let (ck, temp_k3) = hkdf(&Hmac::new(&r.ck), &ecdh(&rs, &r.e));
        open(&temp_k3, 0, &h, &act_three[50..], &mut []);
        let (rk, sk) = hkdf(&Hmac::new(&ck), &[]);
        (rs, sk, rk)
    }
}
