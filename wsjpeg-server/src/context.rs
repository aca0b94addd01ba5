// SPDX-License-Identifier: MIT
//! What every request handler gets: the hub, the settings, the connection it came on.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio_util::task::TaskTracker;

use crate::connections::{ConnectionHandle, Connections};
use crate::hub::Hub;
use crate::settings::Settings;

/// Everything a request handler needs.
pub struct ServerContext {
    pub hub: Arc<Hub>,
    settings: RwLock<Settings>,
    /// Connections (HTTP or upgraded) still being served; waited for on stop.
    pub(crate) tracker: TaskTracker,
    pub(crate) connections: Arc<Connections>,
}

impl ServerContext {
    pub fn new(hub: Arc<Hub>, settings: Settings) -> Arc<Self> {
        Arc::new(ServerContext {
            hub,
            settings: RwLock::new(settings),
            tracker: TaskTracker::new(),
            connections: Connections::new(),
        })
    }

    pub fn config(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn update_config(&self, f: impl FnOnce(&mut Settings)) {
        let mut config = self
            .settings
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut config);
    }

    /// Spawns a task that `stop()` waits for.
    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(fut);
    }
}

/// The connection a request came on, put into each request's extensions for the handlers.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The connection is TLS (https, wss).
    pub secure: bool,
    pub connection: ConnectionHandle,
}
