//! BOLT 8 (brontide), each figure beside its floor, in the same run:
//!
//! - handshake, both sides in memory, against the crypto it cannot avoid
//!   with the same secp256k1 (the one `bitcoin` re-exports): 2 ephemeral key
//!   generations, 6 ECDH (3 per side: es, ee, se) and 3 public-key parses
//!   (the two ephemeral keys and the initiator's static key, each parsed by
//!   the side that receives it). Target: ≤ 1.05× the floor. Beside it, the
//!   same handshake written out by hand without snow, with our primitives
//!   (`support/handshake.rs`, `reference`): what BOLT 8 itself costs over
//!   the floor, and what ours costs over that.
//! - transport, encrypt + decrypt of one message (1 KiB, 65535 B) against
//!   one raw `ring` ChaCha20-Poly1305 seal + open of the same bytes. Targets:
//!   ≤ 1.35× at 1 KiB (a frame is two AEAD operations, header and body);
//!   ≥ 0.9× raw throughput at 65535 B.
//! - loopback TCP, one way, messages of 1 KiB and 65535 B through
//!   `FramedWrite`/`FramedRead` after a real `dial`/`Listener` handshake,
//!   against raw TCP moving the same number of bytes (the frame sizes)
//!   without encryption, buffered as the codec buffers (8 KiB).
//!
//! Lines starting `PAIRED` give the ratios measured interleaved (see
//! [`benches::paired`]): on a busy machine they are the ones to trust.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use benches::{paired, report, wanted};
use bitcoin::secp256k1::SecretKey;
use brontide::{
    dial, frame_len, CancellationToken, Decryptor, DialConfig, Encryptor, Listener, ListenerConfig,
    MessageDecoder, MessageEncoder, NodeKeyPair, BODY_TAG_LEN, HEADER_LEN,
};
use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use futures::{SinkExt, StreamExt};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite};

#[path = "support/handshake.rs"]
mod support;

use support::{Fixture, Workload};

const SIZES: [usize; 2] = [1024, 65535];

/// Rounds of interleaved batches for the paired ratios.
const PAIRED_ROUNDS: usize = 41;

fn sk(byte: u8) -> SecretKey {
    // Invariant: 32 repeated bytes 0x01..=0x7f are a valid scalar.
    SecretKey::from_slice(&[byte; 32]).expect("valid scalar")
}

fn handshake(c: &mut Criterion) {
    let fixture = Fixture::new();
    let fixture = &fixture;
    let run = |w: Workload| move || fixture.run(w);
    let mut group = c.benchmark_group("brontide_handshake");
    group.bench_function("brontide_both_sides", |b| b.iter(run(Workload::Both)));
    group.bench_function("floor_2_keygen_6_ecdh_3_parse", |b| {
        b.iter(run(Workload::Floor))
    });
    group.bench_function("brontide_responder", |b| b.iter(run(Workload::Responder)));
    group.bench_function("floor_responder_1_keygen_3_ecdh_2_parse", |b| {
        b.iter(run(Workload::ResponderFloor))
    });
    group.bench_function("reference_without_snow_both_sides", |b| {
        b.iter(run(Workload::Reference))
    });
    group.finish();
    if wanted("brontide_handshake/brontide_both_sides") {
        report(
            "brontide_handshake both sides / floor",
            &paired(PAIRED_ROUNDS, 20, run(Workload::Both), run(Workload::Floor)),
        );
    }
    if wanted("brontide_handshake/brontide_responder") {
        report(
            "brontide_handshake responder / responder floor",
            &paired(
                PAIRED_ROUNDS,
                40,
                run(Workload::Responder),
                run(Workload::ResponderFloor),
            ),
        );
    }
    // The handshake written out without snow, with our primitives: what
    // the protocol costs over the floor, and what ours costs over it.
    if wanted("brontide_handshake/reference_without_snow") {
        let pairs = [
            (
                "reference both sides / floor",
                Workload::Reference,
                Workload::Floor,
            ),
            (
                "both sides / reference",
                Workload::Both,
                Workload::Reference,
            ),
            (
                "reference responder / responder floor",
                Workload::ReferenceResponder,
                Workload::ResponderFloor,
            ),
            (
                "responder / reference responder",
                Workload::Responder,
                Workload::ReferenceResponder,
            ),
        ];
        for (name, ours, floor) in pairs {
            report(
                &format!("brontide_handshake {name}"),
                &paired(PAIRED_ROUNDS, 20, run(ours), run(floor)),
            );
        }
    }
}

fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn transport(c: &mut Criterion) {
    let (ck, k) = ([0x42u8; 32], [0x24u8; 32]);
    let ring_key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &k).unwrap());

    let mut group = c.benchmark_group("brontide_transport_encrypt_decrypt");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let msg = vec![0x5au8; size];
        let mut frame = vec![0u8; frame_len(size)];
        let mut enc = Encryptor::new(ck, k);
        let mut dec = Decryptor::new(ck, k);
        let mut ours = || {
            enc.encrypt_to_slice(black_box(&msg), &mut frame).unwrap();
            let plain = dec.decrypt_frame(&mut frame).unwrap();
            black_box(plain.len());
        };
        let mut buf = vec![0x5au8; size];
        let mut n = 0u64;
        let mut floor = || {
            n += 1;
            let tag = ring_key
                .seal_in_place_separate_tag(nonce(n), Aad::empty(), black_box(&mut buf))
                .unwrap();
            let plain = ring_key
                .open_in_place_separate_tag(nonce(n), Aad::empty(), tag, &mut buf, 0..)
                .unwrap();
            black_box(plain.len());
        };
        // The framing floor: what a BOLT 8 frame needs of ring, no more.
        // Seal the 2-byte length and the body (each its own nonce) into the
        // frame, then open both, in place, with one key.
        let mut wire = vec![0u8; frame_len(size)];
        let mut m = 0u64;
        let mut framing = || {
            let (head, body) = wire.split_at_mut(HEADER_LEN);
            head[..2].copy_from_slice(&(size as u16).to_be_bytes());
            let body_len = body.len() - BODY_TAG_LEN;
            body[..body_len].copy_from_slice(black_box(&msg));
            let tag = ring_key
                .seal_in_place_separate_tag(nonce(m), Aad::empty(), &mut head[..2])
                .unwrap();
            head[2..].copy_from_slice(tag.as_ref());
            let tag = ring_key
                .seal_in_place_separate_tag(nonce(m + 1), Aad::empty(), &mut body[..body_len])
                .unwrap();
            body[body_len..].copy_from_slice(tag.as_ref());
            let head_tag = Tag::try_from(&head[2..]).unwrap();
            ring_key
                .open_in_place_separate_tag(nonce(m), Aad::empty(), head_tag, &mut head[..2], 0..)
                .unwrap();
            let body_tag = Tag::try_from(&body[body_len..]).unwrap();
            let plain = ring_key
                .open_in_place_separate_tag(
                    nonce(m + 1),
                    Aad::empty(),
                    body_tag,
                    &mut body[..body_len],
                    0..,
                )
                .unwrap();
            m += 2;
            black_box(plain.len());
        };
        group.bench_with_input(BenchmarkId::new("brontide", size), &size, |b, _| {
            b.iter(&mut ours)
        });
        group.bench_with_input(
            BenchmarkId::new("floor_ring_seal_open", size),
            &size,
            |b, _| b.iter(&mut floor),
        );
        group.bench_with_input(
            BenchmarkId::new("floor_framing_len_and_body", size),
            &size,
            |b, _| b.iter(&mut framing),
        );
        if !wanted(&format!(
            "brontide_transport_encrypt_decrypt/brontide/{size}"
        )) {
            continue;
        }
        let batch = if size > 4096 { 20 } else { 1000 };
        report(
            &format!("brontide_transport encrypt+decrypt {size} B / ring seal+open"),
            &paired(PAIRED_ROUNDS, batch, &mut ours, floor),
        );
        report(
            &format!("brontide_transport encrypt+decrypt {size} B / framing floor (length + body)"),
            &paired(PAIRED_ROUNDS, batch, ours, framing),
        );
    }
    group.finish();
}

/// Two ends of an established brontide connection over loopback TCP.
struct BrontidePair {
    tx: FramedWrite<OwnedWriteHalf, MessageEncoder>,
    rx: Option<FramedRead<OwnedReadHalf, MessageDecoder>>,
}

async fn brontide_pair() -> BrontidePair {
    let alice = NodeKeyPair::new(sk(0x11));
    let bob = NodeKeyPair::new(sk(0x21));
    let bob_id = bob.public_key();
    let mut listener = Listener::bind("127.0.0.1:0", bob, ListenerConfig::default())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let cancel = CancellationToken::new();
    let config = DialConfig::default();
    let (conn, accepted) = tokio::join!(
        dial(addr, &alice, &bob_id, &config, &cancel),
        listener.accept()
    );
    let (stream, enc, _) = conn.unwrap().into_parts();
    let (_, tx) = stream.into_split();
    let (stream, _, dec) = accepted.unwrap().connection.into_parts();
    let (rx, _) = stream.into_split();
    BrontidePair {
        tx: FramedWrite::new(tx, MessageEncoder::new(enc)),
        rx: Some(FramedRead::new(rx, MessageDecoder::new(dec))),
    }
}

/// Raw TCP with 8 KiB buffers both ways, as `FramedWrite` (its
/// backpressure boundary) and `FramedRead` (its initial buffer) use.
async fn tcp_pair() -> (BufWriter<OwnedWriteHalf>, Option<BufReader<OwnedReadHalf>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (_, tx) = client.unwrap().into_split();
    let (rx, _) = server.unwrap().0.into_split();
    (
        BufWriter::with_capacity(8192, tx),
        Some(BufReader::with_capacity(8192, rx)),
    )
}

type RawTx = BufWriter<OwnedWriteHalf>;
type RawRx = BufReader<OwnedReadHalf>;

/// Sends `count` messages of `msg` one way over brontide; the time until
/// the last one is received and decrypted.
async fn brontide_batch(pair: &mut BrontidePair, msg: &bytes::Bytes, count: u64) -> Duration {
    let size = msg.len();
    let mut rx = pair.rx.take().unwrap();
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        for _ in 0..count {
            let m = rx.next().await.unwrap().unwrap();
            assert_eq!(m.len(), size);
        }
        rx
    });
    for _ in 0..count {
        pair.tx.feed(msg.clone()).await.unwrap();
    }
    SinkExt::<bytes::Bytes>::flush(&mut pair.tx).await.unwrap();
    pair.rx = Some(reader.await.unwrap());
    start.elapsed()
}

/// The same bytes over raw buffered TCP.
async fn raw_batch(tx: &mut RawTx, rx: &mut Option<RawRx>, wire: &[u8], count: u64) -> Duration {
    let len = wire.len();
    let mut r = rx.take().unwrap();
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; len];
        for _ in 0..count {
            r.read_exact(&mut buf).await.unwrap();
        }
        r
    });
    for _ in 0..count {
        tx.write_all(wire).await.unwrap();
    }
    tx.flush().await.unwrap();
    *rx = Some(reader.await.unwrap());
    start.elapsed()
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("brontide_loopback_one_way");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let msg = bytes::Bytes::from(vec![0x5au8; size]);
        let mut pair = rt.block_on(brontide_pair());
        group.bench_with_input(BenchmarkId::new("brontide", size), &size, |b, _| {
            b.iter_custom(|iters| rt.block_on(brontide_batch(&mut pair, &msg, iters)))
        });
        let wire = vec![0x5au8; frame_len(size)];
        let (mut tx, mut rx) = rt.block_on(tcp_pair());
        group.bench_with_input(
            BenchmarkId::new("floor_raw_tcp_buffered", size),
            &size,
            |b, _| b.iter_custom(|iters| rt.block_on(raw_batch(&mut tx, &mut rx, &wire, iters))),
        );
        if !wanted(&format!("brontide_loopback_one_way/brontide/{size}")) {
            continue;
        }
        let count = if size > 4096 { 32 } else { 1024 };
        let p = paired(
            PAIRED_ROUNDS,
            1,
            || {
                rt.block_on(brontide_batch(&mut pair, &msg, count));
            },
            || {
                rt.block_on(raw_batch(&mut tx, &mut rx, &wire, count));
            },
        );
        let per_msg = |d: Duration| d / count as u32;
        let mib_s = |d: Duration| size as f64 / per_msg(d).as_secs_f64() / (1024.0 * 1024.0);
        println!(
            "PAIRED brontide loopback one way {size} B / raw buffered TCP: ours {:.3?} per message \
             ({:.0} msg/s, {:.0} MiB/s), floor {:.3?} per message ({:.0} MiB/s), ratio {:.3}",
            per_msg(p.ours),
            1.0 / per_msg(p.ours).as_secs_f64(),
            mib_s(p.ours),
            per_msg(p.floor),
            mib_s(p.floor),
            p.ratio
        );
    }
    group.finish();
    // The connections are idle; do not wait on them.
    rt.shutdown_background();
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group! {
        name = benches;
        config = benches::criterion();
        targets = super::handshake, super::transport, super::loopback
    }
}

criterion_main!(group::benches);
