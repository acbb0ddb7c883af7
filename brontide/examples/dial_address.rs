//! brontide alone: a listener on 127.0.0.1, dialed by a Lightning address
//! (`pubkey@localhost:port`, resolved by the transport), one message each
//! way; then a client that sends garbage, which the listener reports with
//! the spec's failure code.
//!
//! `cargo run -p brontide --example dial_address`

use brontide::{
    dial_with, DialConfig, Listener, ListenerConfig, ListenerEvent, NetTransport, NodeAddr,
    NodeKeyPair, SecretKey,
};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = NodeKeyPair::new(SecretKey::from_slice(&[0x21; 32])?);
    let client = NodeKeyPair::new(SecretKey::from_slice(&[0x11; 32])?);
    let mut listener =
        Listener::bind("127.0.0.1:0", server.clone(), ListenerConfig::default()).await?;
    let monitor = listener.monitor();
    let mut events = monitor.subscribe();

    // The way a user would give it: text, with a DNS name.
    let text = format!(
        "{}@localhost:{}",
        server.public_key(),
        listener.local_addr().port()
    );
    let node: NodeAddr = text.parse()?;
    let transport = NetTransport::new();
    let cancel = CancellationToken::new();
    let conn = dial_with(
        &transport,
        &node.addr,
        &client,
        &node.pubkey,
        &DialConfig::default(),
        &cancel,
    )
    .await?;
    let accepted = listener.accept().await.ok_or("listener stopped")?;
    println!(
        "{text}: connected, the listener sees {}",
        accepted.remote_pubkey()
    );

    let (mut ours, mut theirs) = (conn.into_framed(), accepted.connection.into_framed());
    ours.send(b"hello".as_slice()).await?;
    println!("received {:?}", theirs.next().await.ok_or("closed")??);

    // A client that does not speak BOLT 8.
    let mut garbage = tokio::net::TcpStream::connect(listener.local_addr()).await?;
    garbage.write_all(&[7u8; 50]).await?;
    if let Some(ListenerEvent::HandshakeFailed(failure)) = events.recv().await {
        println!("{failure} [{}]", failure.category());
    }
    println!("{:?}", monitor.stats());
    listener.shutdown().await;
    Ok(())
}
