//! Reads `pubkey@address` (or a bare address) from the command line, prints
//! what it is and its BOLT 7 descriptor, and reads the descriptor back.
//!
//! `cargo run -p lnaddr --example parse -- 028d75...c7f7@node.example:9736`

use lnaddr::{NetAddress, NodeAddr};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| {
        "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion".to_owned()
    });
    let addr = match arg.parse::<NodeAddr>() {
        Ok(node) => {
            println!("node {}", node.pubkey);
            node.addr
        }
        Err(lnaddr::AddressError::MissingAt) => arg.parse::<NetAddress>()?,
        Err(e) => return Err(e.into()),
    };
    let wire = addr.to_bytes()?;
    println!("{} address {addr}, port {}", addr.kind(), addr.port());
    println!(
        "descriptor type {}: {wire:02x?}",
        addr.kind().descriptor_type()
    );
    let (back, len) = NetAddress::read_from(&wire)?;
    assert_eq!((back, len), (addr, wire.len()));
    Ok(())
}
