//! What the program prints: one JSON object a line with `--json`, readable
//! lines otherwise, and on a terminal a live status line kept in place.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use serde_json::{Map, Value};

/// Where events go. Shared by every task of the program.
pub(crate) struct Output {
    json: bool,
    live: Option<indicatif::ProgressBar>,
    lock: Mutex<()>,
}

impl Output {
    /// `json`: machine-readable lines. `live_view`: keep a status line in
    /// place when stdout is a terminal (ignored otherwise and with `json`).
    pub(crate) fn new(json: bool, live_view: bool) -> Self {
        let live = (live_view && !json && std::io::stdout().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        Output {
            json,
            live,
            lock: Mutex::new(()),
        }
    }

    /// Whether a live status line is shown (else status goes out as lines).
    pub(crate) fn is_live(&self) -> bool {
        self.live.is_some()
    }

    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Prints an event: `fields` (a JSON object) with `"event": name` in
    /// JSON mode, else `text`.
    pub(crate) fn event(&self, name: &str, fields: Value, text: impl FnOnce() -> String) {
        if self.json {
            let mut obj = match fields {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            obj.insert("event".into(), Value::String(name.into()));
            self.line(&Value::Object(obj).to_string());
        } else {
            self.line(&text());
        }
    }

    /// Updates the live status line (or prints it as a line when there is
    /// no terminal, in text mode).
    pub(crate) fn status(&self, text: String) {
        match &self.live {
            Some(bar) => bar.set_message(text),
            None if !self.json => self.line(&text),
            None => {}
        }
    }

    fn line(&self, line: &str) {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match &self.live {
            Some(bar) => bar.println(line),
            None => {
                let mut out = std::io::stdout().lock();
                // A closed stdout (piped into `head`) is not worth a panic.
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
    }

    /// Removes the live status line.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.live {
            bar.finish_and_clear();
        }
    }
}
