//! Running the `lnconnd` binary from tests.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub fn lnconnd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lnconnd"));
    c.stdin(Stdio::null());
    c
}

pub fn run(args: &[&str]) -> Output {
    lnconnd().args(args).output().expect("run lnconnd")
}

pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A `listen` process and the `pubkey@addr` it printed first.
pub struct Listening {
    pub child: Child,
    pub node: String,
}

impl Listening {
    pub fn start(extra: &[&str]) -> Self {
        let mut child = lnconnd()
            .args(["listen", "--bind", "127.0.0.1:0", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn listen");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read the listening line");
        let v: Value = serde_json::from_str(&first).expect("JSON");
        assert_eq!(v["event"], "listening", "{first}");
        let node = format!(
            "{}@{}",
            v["pubkey"].as_str().expect("pubkey"),
            v["addr"].as_str().expect("addr")
        );
        Listening { child, node }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod daemon;
