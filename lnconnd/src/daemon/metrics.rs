//! Prometheus metrics at `GET /metrics`, through `prometheus-client` (the
//! Prometheus project's own Rust client: the text format, no HTTP stack of
//! its own, a handful of small dependencies), served by a tiny HTTP/1.1
//! responder on tokio.
//!
//! Counters move with the node's facts; the gauges (peers by state, dial
//! slots in use) are read from the node at each scrape.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::engine::{Engine, Fact, PeerState};
use super::Daemon;

type Label = [(&'static str, &'static str); 1];

/// The daemon's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    peers: Family<Label, Gauge>,
    dial_slots: Gauge,
    dials_started: Counter,
    dials_failed: Family<Label, Counter>,
    inbound: Family<Label, Counter>,
    inbound_failed: Family<[(&'static str, String); 1], Counter>,
    connections: Family<Label, Counter>,
    disconnections: Family<Label, Counter>,
    duplicates: Family<Label, Counter>,
    reconnect: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lnconnd");
        let peers = Family::<Label, Gauge>::default();
        let dial_slots = Gauge::default();
        let dials_started = Counter::default();
        let dials_failed = Family::<Label, Counter>::default();
        let inbound = Family::<Label, Counter>::default();
        let inbound_failed = Family::<[(&'static str, String); 1], Counter>::default();
        let connections = Family::<Label, Counter>::default();
        let disconnections = Family::<Label, Counter>::default();
        let duplicates = Family::<Label, Counter>::default();
        // 10 ms to about 3 h.
        let reconnect = Histogram::new(exponential_buckets(0.01, 4.0, 11));
        registry.register("peers", "Peers by state", peers.clone());
        registry.register(
            "dial_slots_in_use",
            "Global dial slots in use",
            dial_slots.clone(),
        );
        registry.register("dials_started", "Dials started", dials_started.clone());
        registry.register(
            "dials_failed",
            "Dials failed, by category (peer_fault, network, timeout, local)",
            dials_failed.clone(),
        );
        registry.register(
            "inbound_handshakes",
            "Inbound connections through the handshake, by outcome (accepted, refused_banned, failed)",
            inbound.clone(),
        );
        registry.register(
            "inbound_handshake_failures",
            "Inbound handshakes failed, by the spec's failure code (ACT1_BAD_VERSION, ...) or timed_out, io_error, evicted, key_refused, local",
            inbound_failed.clone(),
        );
        registry.register(
            "connections",
            "Connections established, by direction",
            connections.clone(),
        );
        registry.register(
            "disconnections",
            "Connections ended, by direction",
            disconnections.clone(),
        );
        registry.register(
            "duplicates_resolved",
            "Duplicate connections resolved, by the direction kept",
            duplicates.clone(),
        );
        registry.register(
            "reconnect_latency_seconds",
            "From a persistent peer's disconnect to its next connection",
            reconnect.clone(),
        );
        // Every label of a family shows from the first scrape, at zero.
        for s in PeerState::ALL {
            let _ = peers.get_or_create(&[("state", s.name())]);
        }
        for c in ["peer_fault", "network", "timeout", "local"] {
            let _ = dials_failed.get_or_create(&[("category", c)]);
        }
        for o in ["accepted", "refused_banned", "failed"] {
            let _ = inbound.get_or_create(&[("outcome", o)]);
        }
        for d in ["inbound", "outbound"] {
            let _ = connections.get_or_create(&[("direction", d)]);
            let _ = disconnections.get_or_create(&[("direction", d)]);
            let _ = duplicates.get_or_create(&[("kept", d)]);
        }
        Metrics {
            registry,
            peers,
            dial_slots,
            dials_started,
            dials_failed,
            inbound,
            inbound_failed,
            connections,
            disconnections,
            duplicates,
            reconnect,
        }
    }

    /// Moves the counters for one fact. `down` holds when each
    /// reconnecting peer went down.
    pub(crate) fn observe(
        &self,
        fact: &Fact,
        now: Instant,
        down: &mut HashMap<PublicKey, Instant>,
    ) {
        match fact {
            Fact::DialStarted { .. } => {
                self.dials_started.inc();
            }
            Fact::DialFailed { category, .. } => {
                self.dials_failed
                    .get_or_create(&[("category", category.name())])
                    .inc();
            }
            Fact::Connected {
                peer, direction, ..
            } => {
                self.connections
                    .get_or_create(&[("direction", direction)])
                    .inc();
                if *direction == "inbound" {
                    self.inbound.get_or_create(&[("outcome", "accepted")]).inc();
                }
                if let Some(since) = down.remove(peer) {
                    self.reconnect
                        .observe(now.saturating_duration_since(since).as_secs_f64());
                }
            }
            Fact::Disconnected {
                peer,
                direction,
                reconnecting,
                ..
            } => {
                self.disconnections
                    .get_or_create(&[("direction", direction)])
                    .inc();
                if *reconnecting {
                    down.insert(*peer, now);
                }
            }
            Fact::RefusedBanned { .. } => {
                self.inbound
                    .get_or_create(&[("outcome", "refused_banned")])
                    .inc();
            }
            Fact::DuplicateResolved { kept, .. } => {
                self.duplicates.get_or_create(&[("kept", kept)]).inc();
            }
            Fact::WorkerStopped { peer } => {
                down.remove(peer);
            }
            Fact::InboundFailed { code, .. } => {
                self.inbound.get_or_create(&[("outcome", "failed")]).inc();
                self.inbound_failed
                    .get_or_create(&[("code", code.clone())])
                    .inc();
            }
            _ => {}
        }
    }

    /// The text exposition, with the gauges read from the node now.
    fn render(&self, engine: &Engine) -> String {
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        for p in engine.peers() {
            *counts.entry(p.state.name()).or_default() += 1;
        }
        for s in PeerState::ALL {
            let n = counts.get(s.name()).copied().unwrap_or(0);
            self.peers.get_or_create(&[("state", s.name())]).set(n);
        }
        self.dial_slots
            .set(i64::try_from(engine.dials_in_flight()).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Scrapes served at once (an idle connection is evicted for a new one,
/// see [`super::http`]).
const MAX_SCRAPES: usize = 8;
/// Time a scraper gets to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(3);
/// Time a scraper gets to send its request and read the answer.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the metrics endpoint.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `GET /metrics` until the daemon stops.
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>, daemon: Arc<Daemon>) {
    let engine = daemon.engine.clone();
    let render = Arc::new(move || metrics.render(&engine));
    let limits = super::http::Limits {
        max: MAX_SCRAPES,
        head: HEAD_TIMEOUT,
        total: SCRAPE_TIMEOUT,
    };
    let (stop, tasks) = (daemon.stop.clone(), daemon.tasks.clone());
    super::http::serve(listener, render, limits, stop, tasks).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        crate::keys::from_hex(&format!("{b:02x}").repeat(32))
            .expect("key")
            .public_key()
    }

    fn text(m: &Metrics) -> String {
        let mut out = String::new();
        encode(&mut out, &m.registry).expect("encode");
        out
    }

    #[test]
    fn facts_move_the_counters_and_the_latency() {
        let m = Metrics::new();
        let mut down = HashMap::new();
        let t0 = Instant::now();
        let peer = key(1);
        let facts = [
            Fact::DialStarted {
                peer,
                addr: "a".into(),
            },
            Fact::DialFailed {
                peer,
                addr: "a".into(),
                error: "x".into(),
                category: super::super::engine::Category::Network,
            },
            Fact::Connected {
                peer,
                direction: "outbound",
                addr: None,
            },
            Fact::Disconnected {
                peer,
                direction: "outbound",
                reason: "r".into(),
                lasted: Duration::ZERO,
                reconnecting: true,
            },
            Fact::InboundFailed {
                from: "127.0.0.1:9".parse().expect("addr"),
                code: "ACT1_BAD_VERSION".into(),
                error: "bad version".into(),
            },
        ];
        for f in &facts {
            m.observe(f, t0, &mut down);
        }
        m.observe(
            &Fact::Connected {
                peer,
                direction: "inbound",
                addr: None,
            },
            t0 + Duration::from_secs(2),
            &mut down,
        );
        let out = text(&m);
        for want in [
            "lnconnd_dials_started_total 1",
            "lnconnd_dials_failed_total{category=\"network\"} 1",
            "lnconnd_dials_failed_total{category=\"timeout\"} 0",
            "lnconnd_connections_total{direction=\"outbound\"} 1",
            "lnconnd_inbound_handshakes_total{outcome=\"accepted\"} 1",
            "lnconnd_inbound_handshakes_total{outcome=\"failed\"} 1",
            "lnconnd_inbound_handshake_failures_total{code=\"ACT1_BAD_VERSION\"} 1",
            "lnconnd_reconnect_latency_seconds_count 1",
            "lnconnd_reconnect_latency_seconds_sum 2.0",
        ] {
            assert!(out.contains(want), "{want} in\n{out}");
        }
        assert!(down.is_empty(), "the reconnect was counted once");
    }
}
