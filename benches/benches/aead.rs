//! ChaCha20-Poly1305: `ring` against RustCrypto's `chacha20poly1305`, sealing
//! in place with a detached tag (what BOLT 8 framing does), at 1 KiB and at
//! the largest BOLT 8 message (65535 bytes). brontide uses the faster one.

use std::hint::black_box;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

const SIZES: [usize; 2] = [1024, 65535];

fn nonce_bytes(n: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_le_bytes());
    nonce
}

fn aead(c: &mut Criterion) {
    let key = [0x42u8; 32];
    let ring_key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).unwrap());
    let rc_key = chacha20poly1305::ChaCha20Poly1305::new(&key.into());

    let mut group = c.benchmark_group("chacha20poly1305_seal");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0u8; size];
        let mut n = 0u64;
        group.bench_with_input(BenchmarkId::new("ring", size), &size, |b, _| {
            b.iter(|| {
                n += 1;
                let nonce = Nonce::assume_unique_for_key(nonce_bytes(n));
                black_box(ring_key.seal_in_place_separate_tag(nonce, Aad::empty(), &mut buf))
            })
        });
        group.bench_with_input(BenchmarkId::new("rustcrypto", size), &size, |b, _| {
            b.iter(|| {
                n += 1;
                let nonce = nonce_bytes(n);
                black_box(rc_key.encrypt_in_place_detached(&nonce.into(), &[], &mut buf))
            })
        });
    }
    group.finish();
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group!(benches, super::aead);
}

criterion_main!(group::benches);
