// SPDX-License-Identifier: MIT
//! Tells the application about viewers coming and going: the `client-connected` and
//! `client-disconnected` signals, `notify::n-clients` and the `wsjpegsink-clients` bus message.
//!
//! They are emitted from a thread of their own, so a slow handler delays neither the streaming
//! thread nor the server's runtime.

use gst::prelude::*;

use crate::CAT;
use crate::hub::{ClientEvent, ClientEventSink};

pub const CLIENTS_MESSAGE: &str = "wsjpegsink-clients";

pub fn spawn(element: &super::WsJpegSink) -> Result<ClientEventSink, std::io::Error> {
    let (tx, rx) = std::sync::mpsc::channel::<ClientEvent>();
    let weak = element.downgrade();
    std::thread::Builder::new()
        .name("wsjpeg-notify".into())
        .spawn(move || {
            // Ends when the hub, which owns the sender, is gone.
            for event in rx {
                let Some(element) = weak.upgrade() else { break };
                emit(&element, event);
            }
        })?;
    let tx = std::sync::Mutex::new(tx);
    Ok(Box::new(move |event| {
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(event);
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
