//! The decryptor fed arbitrary frames after a valid handshake, in both
//! directions.
//!
//! The input is a small program. Its first byte picks the direction
//! (bit 0: initiator to responder, or back) and the read size (bits 1 to
//! 3: 1, 2, 7, 18, 19, 250, 4096 or 70,000 bytes per read). Then, one op
//! per byte:
//!
//! - `op % 4 == 0`: a valid message; the next two bytes give its length
//!   (big-endian, up to 65535) and the sender encrypts it;
//! - `op % 4 == 1`: a valid short message (length: the next byte);
//! - `op % 4 == 2`: raw bytes: the next byte gives a count, then that many
//!   input bytes go on the wire as they are;
//! - `op % 4 == 3`: a flipped byte: the next two bytes pick a position in
//!   the wire so far, the byte after them is XORed in (0 becomes 1).
//!
//! The wire is fed to a [`MessageDecoder`] read by read. What must hold:
//! every message delivered is the one sent at that position (nothing forged,
//! nothing reordered); an untouched wire delivers every message and ends
//! cleanly; a touched one ends in a typed peer fault (a decrypt error or a
//! truncated frame). The rest of the input is also handed, as one frame,
//! to the other direction's [`Decryptor`], which must answer with a typed
//! error or a message and never panic.

use std::sync::OnceLock;

use brontide::{
    DecryptError, Decryptor, Encryptor, Error, MessageDecoder, HEADER_LEN, MAX_MESSAGE_LEN,
};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::handshake::spec_sessions;

/// The final chaining key of the spec's handshake (BOLT 8 Appendix A).
const CK: [u8; 32] = hex32("919219dbb2920afa8db80f9a51787a840bcf111ed8d588caf9ab4be716e42b01");
/// The spec initiator's sending key (the responder's receiving key).
const SK: [u8; 32] = hex32("969ab31b4d288cedf6218839b27a3e2140827047f2c0f01bf5c04435d43511a9");
/// The spec initiator's receiving key (the responder's sending key).
const RK: [u8; 32] = hex32("bb9020b8965f4df047e07f955f3c4b88418984aadc5cdb35096b9ea8fa5c3442");

const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("lowercase hex"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// The cipher states a complete handshake with the spec's keys leaves each
/// side: `((initiator's encryptor, decryptor), (responder's encryptor,
/// decryptor))`. The first call runs the real handshake and checks that
/// its sessions encrypt exactly as these do; later calls (one per fuzz
/// run) only build them, which keeps the target fast.
fn spec_cipher_states() -> ((Encryptor, Decryptor), (Encryptor, Decryptor)) {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let (mut initiator, mut responder) = spec_sessions();
        let frame = |e: &mut Encryptor| e.encrypt(b"check").expect("fits");
        assert_eq!(
            frame(initiator.encryptor()),
            frame(&mut Encryptor::new(CK, SK))
        );
        assert_eq!(
            frame(responder.encryptor()),
            frame(&mut Encryptor::new(CK, RK))
        );
    });
    (
        (Encryptor::new(CK, SK), Decryptor::new(CK, RK)),
        (Encryptor::new(CK, RK), Decryptor::new(CK, SK)),
    )
}

/// The wire never grows past this (keeps each run short).
const MAX_WIRE: usize = 1 << 20;

/// Read sizes: single bytes, splits inside the 18-byte header, a typical
/// socket read, and more than the largest frame.
const READ_SIZES: [usize; 8] = [1, 2, 7, 18, 19, 250, 4096, 70_000];

/// What one run of [`decrypt_frames`] did.
#[derive(Debug, Default)]
pub struct FramesReport {
    /// Messages the sender encrypted onto the wire.
    pub sent: usize,
    /// Messages the decoder delivered (always a prefix of `sent`).
    pub delivered: usize,
    /// Whether raw bytes or flips touched the wire.
    pub tampered: bool,
    /// The decoder's error, if it stopped on one.
    pub error: Option<String>,
}

/// A deterministic message body: `len` bytes that differ per position.
fn body(len: usize, index: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (index as u8))
        .collect()
}

/// Runs one program (see the module docs).
///
/// # Panics
/// If a property above is broken.
pub fn decrypt_frames(data: &[u8]) -> FramesReport {
    let mut report = FramesReport::default();
    let Some((&control, mut ops)) = data.split_first() else {
        return report;
    };
    let to_responder = control & 1 == 0;
    let read_size = READ_SIZES[usize::from((control >> 1) & 7)];
    // Byte-at-a-time reads of megabytes would make each run slow: the
    // wire is capped at 64 KiB per byte of read size.
    let max_wire = MAX_WIRE.min(read_size.saturating_mul(1 << 16));

    let ((initiator_tx, initiator_rx), (responder_tx, responder_rx)) = spec_cipher_states();
    let (mut tx, rx, mut other_rx) = if to_responder {
        (initiator_tx, responder_rx, initiator_rx)
    } else {
        (responder_tx, initiator_rx, responder_rx)
    };

    let mut wire = BytesMut::new();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        match op % 4 {
            0 | 1 => {
                let len = if op % 4 == 0 {
                    let (hi, lo) = (take(&mut ops), take(&mut ops));
                    usize::from(u16::from_be_bytes([hi, lo]))
                } else {
                    usize::from(take(&mut ops))
                };
                if wire.len() + brontide::frame_len(len) > max_wire {
                    continue;
                }
                let msg = body(len, sent.len());
                tx.encrypt_into(&msg, &mut wire)
                    .expect("at most MAX_MESSAGE_LEN bytes");
                sent.push(msg);
            }
            2 => {
                let n = usize::from(take(&mut ops)).min(ops.len());
                let (raw, rest) = ops.split_at(n);
                ops = rest;
                wire.extend_from_slice(raw);
                report.tampered |= n > 0;
            }
            _ => {
                let (hi, lo) = (take(&mut ops), take(&mut ops));
                let mask = take(&mut ops).max(1);
                if !wire.is_empty() {
                    let at = usize::from(u16::from_be_bytes([hi, lo])) % wire.len();
                    wire[at] ^= mask;
                    report.tampered = true;
                }
            }
        }
    }
    report.sent = sent.len();

    // Feed the wire read by read.
    let mut decoder = MessageDecoder::new(rx);
    let mut buf = BytesMut::new();
    let mut failed: Option<Error> = None;
    'reads: for chunk in wire.chunks(read_size) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => deliver(&mut report, &sent, &msg),
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break 'reads;
                }
            }
        }
    }
    if failed.is_none() {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(msg)) => deliver(&mut report, &sent, &msg),
            Ok(None) => {}
            Err(e) => failed = Some(e),
        }
    }
    match &failed {
        None => {
            assert!(buf.is_empty(), "a clean end leaves no bytes behind");
            if !report.tampered {
                assert_eq!(
                    report.delivered, report.sent,
                    "an untouched wire delivers all"
                );
            }
        }
        Some(e) => {
            assert!(e.is_peer_fault(), "not a peer fault: {e}");
            assert!(
                matches!(e, Error::Decrypt(_) | Error::TruncatedFrame),
                "unexpected error {e:?}"
            );
            assert!(report.tampered, "an untouched wire failed: {e}");
            // After a decrypt error the decoder never delivers again, even
            // with a whole frame's worth of bytes (in either read state).
            if let Error::Decrypt(_) = e {
                buf.extend_from_slice(&vec![0u8; brontide::frame_len(MAX_MESSAGE_LEN)]);
                match decoder.decode(&mut buf) {
                    Err(Error::Decrypt(DecryptError::Poisoned)) => {}
                    other => panic!("a failed decoder answered {other:?}"),
                }
            }
            report.error = Some(e.to_string());
        }
    }

    raw_frame(&mut other_rx, ops_tail(data));
    report
}

/// The input after the control byte, as one frame for the other direction.
fn ops_tail(data: &[u8]) -> &[u8] {
    data.get(1..).unwrap_or_default()
}

/// Hands `raw` to a decryptor as one frame: a typed error or a message.
fn raw_frame(decryptor: &mut Decryptor, raw: &[u8]) {
    let mut frame = raw.to_vec();
    match decryptor.decrypt_frame(&mut frame) {
        Ok(msg) => assert!(msg.len() <= MAX_MESSAGE_LEN),
        Err(DecryptError::WrongLength { expected, got }) => {
            assert_eq!(got, raw.len());
            assert_ne!(expected, got);
        }
        Err(DecryptError::BadLengthTag | DecryptError::BadBodyTag) => {
            let header = [0u8; HEADER_LEN];
            assert_eq!(
                decryptor.decrypt_header(&header),
                Err(DecryptError::Poisoned),
                "a failed decryptor must stay failed"
            );
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
}

fn deliver(report: &mut FramesReport, sent: &[Vec<u8>], msg: &[u8]) {
    let Some(expected) = sent.get(report.delivered) else {
        panic!(
            "delivered a message that was never sent ({} bytes)",
            msg.len()
        );
    };
    assert_eq!(
        msg,
        &expected[..],
        "message {} was altered",
        report.delivered
    );
    report.delivered += 1;
}

/// The next input byte, or 0 once the input is used up.
fn take(ops: &mut &[u8]) -> u8 {
    match ops.split_first() {
        Some((&b, rest)) => {
            *ops = rest;
            b
        }
        None => 0,
    }
}
