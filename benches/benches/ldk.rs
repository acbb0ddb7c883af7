//! LDK (`lightning` + `lightning-net-tokio` 0.2) beside brontide, through
//! LDK's public API, in the same run, everything on one tokio runtime of 2
//! worker threads on 127.0.0.1:
//!
//! - inbound handshake capacity: C clients (C = 8, 64) each dialing in a
//!   loop with brontide's `dial` (connect, the three acts, close) against
//!   (a) brontide's `Listener` and (b) an LDK `PeerManager` fed by
//!   `lightning_net_tokio::setup_inbound`; handshakes per second, beside
//!   the in-memory floor (both sides of the sans-IO handshake on 2
//!   threads). LDK's figure includes what its `PeerManager` does per
//!   connection besides the handshake (queueing its `init`, registering and
//!   dropping the peer): that is the cost of its public route.
//! - messages per second over loopback, one way, BOLT 8 messages of 1024
//!   and 65535 bytes: brontide (`FramedWrite` → `FramedRead` after a real
//!   `dial`/`Listener` handshake) against two LDK nodes (custom messages of
//!   type 32769 whose 2-byte type plus payload make the same message
//!   length, queued on the sender and counted by the receiver's handler).
//!
//! Rounds alternate ours, LDK's (and the floor) so that load from other
//! processes hits all alike; lines starting `PAIRED` give per-figure
//! medians and the median of the per-round ratios.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use brontide::{
    dial, CancellationToken, DialConfig, Initiator, Listener, ListenerConfig, MessageDecoder,
    MessageEncoder, NodeKeyPair, Responder,
};
use criterion::{criterion_main, Criterion};
use futures::{SinkExt, StreamExt};
use lightning::ln::msgs::{DecodeError, Init, LightningError};
use lightning::ln::peer_handler::{
    CustomMessageHandler, ErroringMessageHandler, IgnoringMessageHandler, MessageHandler,
    PeerManager,
};
use lightning::ln::wire::CustomMessageReader;
use lightning::sign::KeysManager;
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::ser::LengthLimitedRead;
use lightning_net_tokio::SocketDescriptor;
use testkit::ldk::{Custom, QuietLogger};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Rounds of interleaved batches.
const ROUNDS: usize = 9;
/// Handshakes per client in one batch (at least 400 in all).
const BATCH_PER_CLIENT: u64 = 8;
/// The custom message type LDK carries for the throughput figure.
const CUSTOM_TYPE: u16 = 32769;
/// Message sizes on the wire inside BOLT 8 (type included for LDK's).
const SIZES: [usize; 2] = [1024, 65535];
/// A hang guard for one batch (a stalled peer fails the bench).
const BATCH_CAP: Duration = Duration::from_secs(120);

fn key(i: u64) -> NodeKeyPair {
    let mut bytes = [0x11u8; 32];
    bytes[24..].copy_from_slice(&(i + 1).to_be_bytes());
    // Invariant: 0x11.. with a small counter at the end is a valid scalar.
    NodeKeyPair::new(SecretKey::from_slice(&bytes).expect("valid scalar"))
}

/// LDK's custom-message handler for the bench: counts what arrives and
/// hands LDK what to send.
#[derive(Default)]
struct Counter {
    received: AtomicU64,
    connected: AtomicU64,
    outbox: Mutex<Vec<(PublicKey, Custom)>>,
    changed: Notify,
}

impl CustomMessageReader for Counter {
    type CustomMessage = Custom;

    fn read<R: LengthLimitedRead>(
        &self,
        message_type: u16,
        buffer: &mut R,
    ) -> Result<Option<Custom>, DecodeError> {
        if message_type != CUSTOM_TYPE {
            return Ok(None);
        }
        let len = usize::try_from(buffer.remaining_bytes()).map_err(|_| DecodeError::ShortRead)?;
        let mut payload = vec![0u8; len];
        buffer
            .read_exact(&mut payload)
            .map_err(|_| DecodeError::ShortRead)?;
        Ok(Some(Custom {
            type_id: message_type,
            payload,
        }))
    }
}

impl CustomMessageHandler for Counter {
    fn handle_custom_message(&self, msg: Custom, _: PublicKey) -> Result<(), LightningError> {
        black_box(msg);
        self.received.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
        Ok(())
    }

    fn get_and_clear_pending_msg(&self) -> Vec<(PublicKey, Custom)> {
        std::mem::take(&mut *self.outbox.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn peer_disconnected(&self, _: PublicKey) {}

    fn peer_connected(&self, _: PublicKey, _: &Init, _: bool) -> Result<(), ()> {
        self.connected.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
        Ok(())
    }

    fn provided_node_features(&self) -> NodeFeatures {
        NodeFeatures::empty()
    }

    fn provided_init_features(&self, _: PublicKey) -> InitFeatures {
        InitFeatures::empty()
    }
}

type Manager = PeerManager<
    SocketDescriptor,
    Arc<ErroringMessageHandler>,
    Arc<IgnoringMessageHandler>,
    Arc<IgnoringMessageHandler>,
    Arc<QuietLogger>,
    Arc<Counter>,
    Arc<KeysManager>,
    Arc<IgnoringMessageHandler>,
>;

/// An LDK node: its peer manager, its handler and its node id.
struct Ldk {
    manager: Arc<Manager>,
    counter: Arc<Counter>,
    id: PublicKey,
}

fn ldk(seed: u8) -> Ldk {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let keys = Arc::new(KeysManager::new(
        &[seed; 32],
        now.as_secs(),
        now.subsec_nanos(),
        true,
    ));
    let id = PublicKey::from_secret_key(&Secp256k1::new(), &keys.get_node_secret_key());
    let counter = Arc::new(Counter::default());
    let handler = MessageHandler {
        chan_handler: Arc::new(ErroringMessageHandler::new()),
        route_handler: Arc::new(IgnoringMessageHandler {}),
        onion_message_handler: Arc::new(IgnoringMessageHandler {}),
        custom_message_handler: Arc::clone(&counter),
        send_only_message_handler: Arc::new(IgnoringMessageHandler {}),
    };
    let manager = Arc::new(PeerManager::new(
        handler,
        now.as_secs() as u32,
        &[seed.wrapping_add(1); 32],
        Arc::new(QuietLogger),
        keys,
    ));
    Ldk {
        manager,
        counter,
        id,
    }
}

/// LDK listening on 127.0.0.1, each connection handed to `setup_inbound`.
async fn ldk_listen(node: &Ldk) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("bound address");
    let manager = Arc::clone(&node.manager);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(std) = stream.into_std() else { continue };
            tokio::spawn(lightning_net_tokio::setup_inbound(
                Arc::clone(&manager),
                std,
            ));
        }
    });
    addr
}

/// brontide's listener on 127.0.0.1, accepting and dropping connections.
async fn ours_listen(server: NodeKeyPair) -> SocketAddr {
    let mut listener = Listener::bind("127.0.0.1:0", server, ListenerConfig::default())
        .await
        .expect("bind");
    let addr = listener.local_addr();
    tokio::spawn(async move { while listener.accept().await.is_some() {} });
    addr
}

/// `n` handshakes by `clients` clients dialing `addr` in a loop; the time
/// and the dials that failed.
fn dial_loop(
    rt: &Runtime,
    addr: SocketAddr,
    server: PublicKey,
    clients: u64,
    n: u64,
    keys: &[NodeKeyPair],
) -> (Duration, u64) {
    let remaining = Arc::new(AtomicI64::new(n as i64));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for local in &keys[..clients as usize] {
            let local = local.clone();
            let (remaining, failed) = (Arc::clone(&remaining), Arc::clone(&failed));
            tasks.spawn(async move {
                let config = DialConfig::default();
                let cancel = CancellationToken::new();
                while remaining.fetch_sub(1, Ordering::Relaxed) > 0 {
                    match dial(addr, &local, &server, &config, &cancel).await {
                        Ok(conn) => drop(black_box(conn)),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    (start.elapsed(), failed.load(Ordering::Relaxed))
}

/// The floor: `n` in-memory handshakes, both sides, split over 2 threads.
fn floor(n: u64, alice: &NodeKeyPair, bob: &NodeKeyPair) -> Duration {
    let bob_id = bob.public_key();
    let start = Instant::now();
    std::thread::scope(|s| {
        for share in [n / 2, n - n / 2] {
            s.spawn(move || {
                for _ in 0..share {
                    let (a1, alice) = Initiator::new(alice, &bob_id)
                        .and_then(Initiator::act_one)
                        .expect("act one");
                    let (a2, bob) = Responder::new(bob)
                        .and_then(|r| r.read_act_one(&a1))
                        .expect("act two");
                    let (a3, session) = alice.read_act_two(&a2).expect("act three");
                    black_box((bob.read_act_three(&a3).expect("session"), session));
                }
            });
        }
    });
    start.elapsed()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn capacity(rt: &Runtime) {
    let keys: Vec<NodeKeyPair> = (0..64).map(key).collect();
    let (alice, bob) = (key(2_000_000), key(2_000_001));
    let server = key(1_000_000);
    let server_id = server.public_key();
    let ours_addr = rt.block_on(ours_listen(server));
    let node = ldk(7);
    let ldk_addr = rt.block_on(ldk_listen(&node));
    for clients in [8u64, 64] {
        if !benches::wanted(&format!("ldk_capacity/{clients}")) {
            continue;
        }
        let batch = (clients * BATCH_PER_CLIENT).max(400);
        let (mut o, mut l, mut f) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ol, mut of) = (Vec::new(), Vec::new());
        let mut failed = (0, 0);
        // Warm both listeners up once.
        dial_loop(rt, ours_addr, server_id, clients, clients, &keys);
        dial_loop(rt, ldk_addr, node.id, clients, clients, &keys);
        for round in 0..ROUNDS {
            let mut ours = || {
                let (t, n) = dial_loop(rt, ours_addr, server_id, clients, batch, &keys);
                failed.0 += n;
                t.as_secs_f64()
            };
            let (a, b, c) = if round % 2 == 0 {
                let a = ours();
                let (t, n) = dial_loop(rt, ldk_addr, node.id, clients, batch, &keys);
                failed.1 += n;
                (a, t.as_secs_f64(), floor(batch, &alice, &bob).as_secs_f64())
            } else {
                let c = floor(batch, &alice, &bob).as_secs_f64();
                let (t, n) = dial_loop(rt, ldk_addr, node.id, clients, batch, &keys);
                failed.1 += n;
                (ours(), t.as_secs_f64(), c)
            };
            o.push(a);
            l.push(b);
            f.push(c);
            // Throughput ratios: ours per second over theirs per second.
            ol.push(b / a);
            of.push(c / a);
        }
        let per_s = |v: &mut Vec<f64>| batch as f64 / median(v);
        println!(
            "PAIRED ldk_capacity {clients} clients: brontide Listener {:.0} handshakes/s, \
             LDK PeerManager {:.0} handshakes/s, in-memory floor (2 threads) {:.0} handshakes/s; \
             ours/LDK {:.3}, ours/floor {:.3} (medians of per-round ratios); \
             failed dials: ours {}, LDK {}",
            per_s(&mut o),
            per_s(&mut l),
            per_s(&mut f),
            median(&mut ol),
            median(&mut of),
            failed.0,
            failed.1,
        );
    }
}

/// Two ends of an established brontide connection over loopback TCP.
struct BrontidePair {
    tx: FramedWrite<OwnedWriteHalf, MessageEncoder>,
    rx: Option<FramedRead<OwnedReadHalf, MessageDecoder>>,
}

async fn brontide_pair() -> BrontidePair {
    let alice = key(3_000_000);
    let bob = key(3_000_001);
    let bob_id = bob.public_key();
    let mut listener = Listener::bind("127.0.0.1:0", bob, ListenerConfig::default())
        .await
        .expect("bind");
    let addr = listener.local_addr();
    let cancel = CancellationToken::new();
    let config = DialConfig::default();
    let (conn, accepted) = tokio::join!(
        dial(addr, &alice, &bob_id, &config, &cancel),
        listener.accept()
    );
    let (stream, enc, _) = conn.expect("dial").into_parts();
    let (_, tx) = stream.into_split();
    let (stream, _, dec) = accepted.expect("accept").connection.into_parts();
    let (rx, _) = stream.into_split();
    BrontidePair {
        tx: FramedWrite::new(tx, MessageEncoder::new(enc)),
        rx: Some(FramedRead::new(rx, MessageDecoder::new(dec))),
    }
}

/// `count` messages one way over brontide; until the last is decrypted.
async fn brontide_batch(pair: &mut BrontidePair, msg: &bytes::Bytes, count: u64) -> Duration {
    let mut rx = pair.rx.take().expect("reader back");
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        for _ in 0..count {
            black_box(rx.next().await.expect("open").expect("message"));
        }
        rx
    });
    for _ in 0..count {
        pair.tx.feed(msg.clone()).await.expect("feed");
    }
    SinkExt::<bytes::Bytes>::flush(&mut pair.tx)
        .await
        .expect("flush");
    pair.rx = Some(reader.await.expect("reader"));
    start.elapsed()
}

/// Two LDK nodes, `from` connected to `to`.
struct LdkPair {
    from: Ldk,
    to: Ldk,
}

async fn ldk_pair() -> LdkPair {
    let (from, to) = (ldk(31), ldk(32));
    let addr = ldk_listen(&to).await;
    let manager = Arc::clone(&from.manager);
    let to_id = to.id;
    tokio::spawn(async move {
        if let Some(running) = lightning_net_tokio::connect_outbound(manager, to_id, addr).await {
            running.await;
        }
    });
    let pair = LdkPair { from, to };
    wait_until(&pair.to.counter, |c| {
        c.connected.load(Ordering::Relaxed) >= 1
    })
    .await;
    wait_until(&pair.from.counter, |c| {
        c.connected.load(Ordering::Relaxed) >= 1
    })
    .await;
    pair
}

async fn wait_until(counter: &Counter, done: impl Fn(&Counter) -> bool) {
    let wait = async {
        while !done(counter) {
            counter.changed.notified().await;
        }
    };
    tokio::time::timeout(BATCH_CAP, wait)
        .await
        .expect("LDK made no progress");
}

/// `count` custom messages from one LDK node to the other; until the
/// receiver's handler has counted the last.
async fn ldk_batch(pair: &LdkPair, payload: &[u8], count: u64) -> Duration {
    let target = pair.to.counter.received.load(Ordering::Relaxed) + count;
    let start = Instant::now();
    {
        let mut outbox = pair
            .from
            .counter
            .outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for _ in 0..count {
            outbox.push((
                pair.to.id,
                Custom {
                    type_id: CUSTOM_TYPE,
                    payload: payload.to_vec(),
                },
            ));
        }
    }
    pair.from.manager.process_events();
    wait_until(&pair.to.counter, |c| {
        c.received.load(Ordering::Relaxed) >= target
    })
    .await;
    start.elapsed()
}

fn messages(rt: &Runtime) {
    for size in SIZES {
        if !benches::wanted(&format!("ldk_messages/{size}")) {
            continue;
        }
        let msg = bytes::Bytes::from(vec![0x5au8; size]);
        let payload = vec![0x5au8; size - 2];
        let mut ours = rt.block_on(brontide_pair());
        let theirs = rt.block_on(ldk_pair());
        let count = if size > 4096 { 32 } else { 1024 };
        // Warm both up once.
        rt.block_on(brontide_batch(&mut ours, &msg, count));
        rt.block_on(ldk_batch(&theirs, &payload, count));
        let (mut o, mut l, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (a, b) = if round % 2 == 0 {
                let a = rt.block_on(brontide_batch(&mut ours, &msg, count));
                (a, rt.block_on(ldk_batch(&theirs, &payload, count)))
            } else {
                let b = rt.block_on(ldk_batch(&theirs, &payload, count));
                (rt.block_on(brontide_batch(&mut ours, &msg, count)), b)
            };
            o.push(a.as_secs_f64());
            l.push(b.as_secs_f64());
            r.push(b.as_secs_f64() / a.as_secs_f64());
        }
        let per_s = |v: &mut Vec<f64>| count as f64 / median(v);
        let (os, ls) = (per_s(&mut o), per_s(&mut l));
        let mib = |per_s: f64| per_s * size as f64 / (1024.0 * 1024.0);
        println!(
            "PAIRED ldk_messages {size} B one way: brontide {os:.0} msg/s ({:.0} MiB/s), \
             LDK {ls:.0} msg/s ({:.0} MiB/s); ours/LDK {:.3} (median of per-round ratios)",
            mib(os),
            mib(ls),
            median(&mut r),
        );
    }
}

fn ldk_vs_ours(_: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    capacity(&rt);
    messages(&rt);
    // Connections are still open; do not wait on them.
    rt.shutdown_background();
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group! {
        name = benches;
        config = benches::criterion();
        targets = super::ldk_vs_ours
    }
}

criterion_main!(group::benches);
