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
}

impl Workload {
    /// The workload named on a command line.
    #[allow(dead_code)] // Used by handshake_count.rs only.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "both" => Workload::Both,
            "responder" => Workload::Responder,
            "floor" => Workload::Floor,
            "responder_floor" => Workload::ResponderFloor,
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
        let (act_three, _) = initiator.read_act_two(&act_two).expect("act three");
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
        }
    }

    /// Runs `workload` once.
    pub(crate) fn run(&self, workload: Workload) {
        match workload {
            Workload::Both => self.both(),
            Workload::Responder => self.responder(),
            Workload::Floor => self.floor(),
            Workload::ResponderFloor => self.responder_floor(),
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
