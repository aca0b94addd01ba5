// SPDX-License-Identifier: MIT
//! Tells the application about viewers coming and going: the `client-connected` and
//! `client-disconnected` signals, `notify::n-clients` and the `wsjpegsink-clients` bus message.
//!
//! They are emitted from a thread of their own, so a slow handler delays neither the streaming
//! thread nor the server's runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

use crate::CAT;
use crate::hub::{ClientEvent, ClientEventSink};

pub const CLIENTS_MESSAGE: &str = "wsjpegsink-clients";

/// Viewer changes waiting for the notification thread, at most. Beyond that (a signal handler
/// that blocks, a flood of connections) changes are dropped rather than queued without bound,
/// and `notify::n-clients` is emitted after the next one: `n-clients` read then is the live
/// count, whatever was dropped.
const QUEUE_LIMIT: usize = 1024;

pub fn spawn(element: &super::WsJpegSink) -> Result<ClientEventSink, std::io::Error> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<ClientEvent>(QUEUE_LIMIT);
    let dropped = Arc::new(AtomicU64::new(0));
    let lost = dropped.clone();
    let weak = element.downgrade();
    std::thread::Builder::new()
        .name("wsjpeg-notify".into())
        .spawn(move || {
            // Ends when the hub, which owns the sender, is gone.
            while let Ok(event) = rx.recv() {
                let Some(element) = weak.upgrade() else { break };
                emit(&element, event);
                let lost = lost.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    gst::warning!(
                        CAT,
                        obj = &element,
                        "{} viewer change(s) not signalled: the handlers of client-connected / \
                         client-disconnected are too slow",
                        lost
                    );
                    element.notify("n-clients");
                }
            }
        })?;
    Ok(Box::new(move |event| {
        if tx.try_send(event).is_err() {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }))
}

fn emit(element: &super::WsJpegSink, event: ClientEvent) {
    let (signal, address, n_clients) = match event {
        ClientEvent::Connected { address, n_clients } => ("client-connected", address, n_clients),
        ClientEvent::Disconnected { address, n_clients } => {
            ("client-disconnected", address, n_clients)
        }
    };
    let address = address.to_string();
    gst::debug!(
        CAT,
        obj = element,
        "{signal}: {address}, {n_clients} viewer(s)"
    );
    element.emit_by_name::<()>(signal, &[&address, &n_clients]);
    element.notify("n-clients");
    let structure = gst::Structure::builder(CLIENTS_MESSAGE)
        .field("n-clients", n_clients)
        .field("event", signal)
        .field("address", &address)
        .build();
    let _ = element.post_message(
        gst::message::Element::builder(structure)
            .src(element)
            .build(),
    );
}
