//! A conn-worker worker keeps one peer connected over BOLT 8, with
//! `BrontideDialer` and no registry. The peer is a brontide listener on
//! 127.0.0.1 that drops each connection: the worker dials again after its
//! backoff, three times, then the program stops it.
//!
//! `cargo run -p brontide-dialer --example keep_connected`

use brontide::{DialConfig, Listener, ListenerConfig, NodeKeyPair, SecretKey};
use brontide_dialer::BrontideDialer;
use conn_worker::{Config, EventKind, Spawner, TokioClock, When};
use lnaddr::NodeAddr;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let us = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32])?);
    let them = NodeKeyPair::new(SecretKey::from_slice(&[0x22; 32])?);
    let mut listener =
        Listener::bind("127.0.0.1:0", them.clone(), ListenerConfig::default()).await?;
    let peer = NodeAddr::new(them.public_key(), listener.local_addr());

    let (root, tracker) = (CancellationToken::new(), TaskTracker::new());
    let (spawner, mut events) =
        Spawner::new(TokioClock, Config::default(), root.clone(), tracker.clone());
    let worker = spawner.spawn("them", BrontideDialer::new(us, DialConfig::default()));
    worker.connect(Some(vec![peer]), When::Now)?;

    let mut connections = 0;
    while let Some(event) = events.recv().await {
        match event.kind {
            EventKind::Connected { addr, conn } => {
                connections += 1;
                println!("connected to {addr} ({})", conn.remote_pubkey());
                // The far end drops it; tell the worker, which redials
                // after its backoff.
                let accepted = listener.accept().await.ok_or("listener stopped")?;
                drop((conn, accepted));
                if connections == 3 {
                    break;
                }
                worker.connect(
                    None,
                    When::AfterDisconnect {
                        connected_for: None,
                    },
                )?;
            }
            EventKind::DialFailed {
                addr,
                failure,
                class,
            } => println!("dial to {addr} failed ({class}): {failure}"),
            EventKind::Waiting { .. } => println!("waiting for the backoff"),
            _ => {}
        }
    }
    worker.stop();
    root.cancel();
    tracker.close();
    tracker.wait().await;
    listener.shutdown().await;
    Ok(())
}
