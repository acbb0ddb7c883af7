//! Per-peer workers (conn-worker), each figure beside the raw tokio task and
//! channel operations it is built from, in the same run:
//!
//! - command → dial started: `connect(Now)` on an idle worker until its
//!   `DialStarted` event arrives, against a raw round trip (one message to a
//!   task over an unbounded channel, one message back);
//! - 100,000 idle workers: heap bytes per worker (a counting global
//!   allocator; target < 1 KiB), fresh and once each has connected and gone
//!   idle again, time to create them all and time to stop
//!   them all (target < 0.5 s each), against 100,000 raw tasks that each
//!   hold a child `CancellationToken`, report once at start and once at end
//!   over an unbounded channel, and run on a `TaskTracker`.
//!
//! Everything runs on a current-thread runtime, the floor included.

// A global allocator is `unsafe` to implement; this one only forwards to the
// system allocator and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conn_worker::{
    dial_fn, Config, DialerEvents, EventKind, Spawner, TokioClock, When, WorkerHandle,
};
use criterion::{criterion_main, Criterion, SamplingMode};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Live allocations by size class: bucket `i` holds sizes in `(2^(i-1), 2^i]`.
static BUCKETS: [AtomicIsize; 24] = [const { AtomicIsize::new(0) }; 24];

fn bucket(size: usize) -> &'static AtomicIsize {
    let i = (usize::BITS - size.saturating_sub(1).leading_zeros()) as usize;
    &BUCKETS[i.min(BUCKETS.len() - 1)]
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            bucket(layout.size()).fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            bucket(layout.size()).fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        bucket(layout.size()).fetch_sub(1, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn buckets() -> Vec<isize> {
    BUCKETS.iter().map(|b| b.load(Ordering::Relaxed)).collect()
}

/// Live allocations per item by size class, between two `buckets()`.
fn per_item_classes(before: &[isize], after: &[isize], items: usize) -> String {
    let mut out = Vec::new();
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        let n = (a - b) as f64 / items as f64;
        if n >= 0.05 {
            out.push(format!("{n:.2} of <={} B", 1usize << i));
        }
    }
    out.join(", ")
}

const WORKERS: usize = 100_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A dialer that connects at once (the connection is `()`).
fn instant_dialer() -> impl conn_worker::Dialer<Addr = u32, Conn = ()> + Clone {
    dial_fn(|_addr: u32, _cancel: CancellationToken| async { Ok::<(), Infallible>(()) })
}

type Dial = Arc<conn_worker::FnDialer<u32, fn(u32, CancellationToken) -> Ready>>;
type Ready = std::future::Ready<Result<(), Infallible>>;

fn ready_dial(_addr: u32, _cancel: CancellationToken) -> Ready {
    std::future::ready(Ok(()))
}

fn shared_dialer() -> Dial {
    Arc::new(dial_fn(ready_dial as fn(u32, CancellationToken) -> Ready))
}

async fn next_kind<A, C, E>(
    events: &mut conn_worker::Events<u32, A, C, E>,
    want: impl Fn(&EventKind<A, C, E>) -> bool,
) {
    loop {
        let event = events.recv().await.unwrap();
        if want(&event.kind) {
            return;
        }
    }
}

fn command_latency(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("conn_worker_command_to_dial_started");

    let (spawner, mut events) = rt.block_on(async {
        Spawner::new(
            TokioClock,
            Config::default(),
            CancellationToken::new(),
            TaskTracker::new(),
        )
    });
    let worker = rt.block_on(async {
        let w = spawner.spawn(1u32, instant_dialer());
        next_kind(&mut events, |k| matches!(k, EventKind::Idle)).await;
        w
    });
    group.bench_function("worker_connect_now", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    worker.connect(Some(vec![7]), When::Now).unwrap();
                    next_kind(&mut events, |k| matches!(k, EventKind::DialStarted { .. })).await;
                    total += start.elapsed();
                    // Back to idle, untimed: Connected, then Idle.
                    next_kind(&mut events, |k| matches!(k, EventKind::Idle)).await;
                }
                total
            })
        })
    });

    // Floor: a command to a task over a channel, an event back.
    let (cmd_tx, mut rx_back) = rt.block_on(async {
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<u32>();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel::<u32>();
        tokio::spawn(async move {
            while let Some(cmd) = cmd_rx.recv().await {
                let _ = ev_tx.send(cmd);
            }
        });
        (cmd_tx, ev_rx)
    });
    group.bench_function("floor_channel_round_trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    cmd_tx.send(i as u32).unwrap();
                    black_box(rx_back.recv().await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    if !benches::wanted("conn_worker_command_to_dial_started/worker_connect_now") {
        return;
    }
    let paired_result = rt.block_on(async {
        let mut ours = Vec::new();
        let mut floor = Vec::new();
        let mut ratios = Vec::new();
        for round in 0..41 {
            let (o, f) = if round % 2 == 0 {
                let o = ours_round(&worker, &mut events).await;
                (o, floor_round_trip(&cmd_tx, &mut rx_back).await)
            } else {
                let f = floor_round_trip(&cmd_tx, &mut rx_back).await;
                (ours_round(&worker, &mut events).await, f)
            };
            ours.push(o);
            floor.push(f);
            ratios.push(o.as_secs_f64() / f.as_secs_f64());
        }
        ours.sort_unstable();
        floor.sort_unstable();
        ratios.sort_unstable_by(f64::total_cmp);
        benches::Paired {
            ours: ours[20],
            floor: floor[20],
            ratio: ratios[20],
        }
    });
    benches::report(
        "conn_worker command -> dial started / channel round trip",
        &paired_result,
    );
    drop(worker);
    drop(cmd_tx);
}

/// 200 commands to dial started; the time per command.
async fn ours_round<C, E>(
    worker: &WorkerHandle<u32, u32, E>,
    events: &mut conn_worker::Events<u32, u32, C, E>,
) -> Duration {
    let mut t = Duration::ZERO;
    for _ in 0..200 {
        let start = Instant::now();
        worker.connect(Some(vec![7]), When::Now).unwrap();
        next_kind(events, |k| matches!(k, EventKind::DialStarted { .. })).await;
        t += start.elapsed();
        next_kind(events, |k| matches!(k, EventKind::Idle)).await;
    }
    t / 200
}

/// 200 raw round trips; the time per trip.
async fn floor_round_trip(
    tx: &mpsc::UnboundedSender<u32>,
    rx: &mut mpsc::UnboundedReceiver<u32>,
) -> Duration {
    let start = Instant::now();
    for i in 0..200 {
        tx.send(i).unwrap();
        black_box(rx.recv().await.unwrap());
    }
    start.elapsed() / 200
}

type Handles = Vec<WorkerHandle<u32, u32, Infallible>>;

/// Creates `WORKERS` idle workers and waits until each has started (its
/// first `Idle` event).
async fn create_workers(
    dialer: &Dial,
    handles: &mut Handles,
) -> (Spawner<u32, Dial, TokioClock>, DialerEvents<u32, Dial>) {
    let (spawner, mut events) = Spawner::new(
        TokioClock,
        Config::default(),
        CancellationToken::new(),
        TaskTracker::new(),
    );
    for i in 0..WORKERS {
        handles.push(spawner.spawn(i as u32, Arc::clone(dialer)));
    }
    for _ in 0..WORKERS {
        next_kind(&mut events, |k| matches!(k, EventKind::Idle)).await;
    }
    (spawner, events)
}

/// Stops every worker and waits for every task to end.
async fn stop_workers(spawner: &Spawner<u32, Dial, TokioClock>, handles: &mut Handles) {
    for h in handles.iter() {
        h.stop();
    }
    handles.clear();
    spawner.tracker().close();
    spawner.tracker().wait().await;
}

/// Floor: a raw task per peer with a child token, reporting at start and end.
async fn create_raw(
    root: &CancellationToken,
    tracker: &TaskTracker,
    tokens: &mut Vec<CancellationToken>,
) -> mpsc::UnboundedReceiver<u32> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..WORKERS {
        let token = root.child_token();
        tokens.push(token.clone());
        let tx = tx.clone();
        tracker.spawn(async move {
            let _ = tx.send(i as u32);
            token.cancelled().await;
            let _ = tx.send(i as u32);
        });
    }
    for _ in 0..WORKERS {
        rx.recv().await.unwrap();
    }
    rx
}

async fn stop_raw(tracker: &TaskTracker, tokens: &mut Vec<CancellationToken>) {
    for t in tokens.iter() {
        t.cancel();
    }
    tokens.clear();
    tracker.close();
    tracker.wait().await;
}

/// Heap bytes per idle worker and per raw task, measured once and printed.
fn heap_per_worker(rt: &Runtime) {
    let dialer = shared_dialer();
    rt.block_on(async {
        let mut handles: Handles = Vec::with_capacity(WORKERS);
        let before = live();
        let classes_before = buckets();
        let (spawner, mut events) = create_workers(&dialer, &mut handles).await;
        // Events are drained; what is left is the workers and their handles.
        while events.try_recv().is_ok() {}
        let after = live();
        println!(
            "conn_worker_idle_heap: allocations per idle worker by size class: {}",
            per_item_classes(&classes_before, &buckets(), WORKERS)
        );
        let per_worker = (after - before) as f64 / WORKERS as f64;

        // The same workers once each has connected and gone idle again
        // (a connected peer's worker): what a used worker keeps.
        let classes_fresh = buckets();
        for (i, h) in handles.iter().enumerate() {
            h.connect(Some(vec![i as u32]), When::Now).unwrap();
        }
        let mut idle = 0;
        while idle < WORKERS {
            let event = events.recv().await.unwrap();
            if matches!(event.kind, EventKind::Idle) {
                idle += 1;
            }
        }
        while events.try_recv().is_ok() {}
        let used = live();
        println!(
            "conn_worker_idle_heap: after one connection each, added per worker by size class: {}",
            per_item_classes(&classes_fresh, &buckets(), WORKERS)
        );
        let per_used = (used - before) as f64 / WORKERS as f64;
        stop_workers(&spawner, &mut handles).await;
        drop((spawner, events));

        let mut tokens = Vec::with_capacity(WORKERS);
        let root = CancellationToken::new();
        let tracker = TaskTracker::new();
        let before = live();
        let rx = create_raw(&root, &tracker, &mut tokens).await;
        let after = live();
        let per_task = (after - before) as f64 / WORKERS as f64;
        stop_raw(&tracker, &mut tokens).await;
        drop(rx);
        println!(
            "conn_worker_idle_heap: {per_worker:.0} bytes per idle worker (handle included); \
             floor (raw task + child token + channel sender): {per_task:.0} bytes per task; \
             ratio {:.2}; target < 1024 bytes per worker",
            per_worker / per_task
        );
        println!(
            "conn_worker_idle_heap: {per_used:.0} bytes per idle worker after one connection \
             (its address lists kept, no buffer of its last round)"
        );
    });
}

fn idle_workers(c: &mut Criterion) {
    let rt = runtime();
    if benches::wanted("conn_worker_100k_idle") {
        heap_per_worker(&rt);
    }
    let dialer = shared_dialer();

    let mut group = c.benchmark_group("conn_worker_100k_idle");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("create_100k_workers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut handles = Vec::with_capacity(WORKERS);
                for _ in 0..iters {
                    let start = Instant::now();
                    let (spawner, events) = create_workers(&dialer, &mut handles).await;
                    total += start.elapsed();
                    stop_workers(&spawner, &mut handles).await;
                    drop(events);
                }
                total
            })
        })
    });
    group.bench_function("stop_100k_workers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut handles = Vec::with_capacity(WORKERS);
                for _ in 0..iters {
                    let (spawner, events) = create_workers(&dialer, &mut handles).await;
                    let start = Instant::now();
                    stop_workers(&spawner, &mut handles).await;
                    total += start.elapsed();
                    drop(events);
                }
                total
            })
        })
    });
    group.bench_function("floor_create_100k_raw_tasks", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut tokens = Vec::with_capacity(WORKERS);
                for _ in 0..iters {
                    let root = CancellationToken::new();
                    let tracker = TaskTracker::new();
                    let start = Instant::now();
                    let rx = create_raw(&root, &tracker, &mut tokens).await;
                    total += start.elapsed();
                    stop_raw(&tracker, &mut tokens).await;
                    drop(rx);
                }
                total
            })
        })
    });
    group.bench_function("floor_stop_100k_raw_tasks", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                let mut tokens = Vec::with_capacity(WORKERS);
                for _ in 0..iters {
                    let root = CancellationToken::new();
                    let tracker = TaskTracker::new();
                    let rx = create_raw(&root, &tracker, &mut tokens).await;
                    let start = Instant::now();
                    stop_raw(&tracker, &mut tokens).await;
                    total += start.elapsed();
                    drop(rx);
                }
                total
            })
        })
    });
    group.finish();
}

/// Criterion's generated group function.
mod group {
    criterion::criterion_group! {
        name = benches;
        config = benches::criterion();
        targets = super::command_latency, super::idle_workers
    }
}

criterion_main!(group::benches);
