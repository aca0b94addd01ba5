// SPDX-License-Identifier: MIT
//! The open connections: a cap on how many there are, and room made for a newcomer by closing
//! the oldest connection that is doing nothing (no request in progress, no viewer on it).
//!
//! Idle sockets, whether a browser's spare keep-alive connection or hundreds opened on purpose,
//! therefore cannot keep `/healthz` or a real viewer out: only connections at work are never
//! closed to make room, and those are bounded by `max-clients` and the request deadlines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::sync::lock;

#[derive(Debug, Default)]
pub struct Connections {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    /// By id, which is also the order of arrival.
    open: BTreeMap<u64, Arc<Connection>>,
}

#[derive(Debug)]
struct Connection {
    /// Requests being answered and viewers being served on this connection.
    busy: AtomicUsize,
    /// Fired to close the connection to make room for another.
    evict: CancellationToken,
}

impl Connections {
    pub fn new() -> Arc<Self> {
        Arc::new(Connections::default())
    }

    pub fn len(&self) -> usize {
        lock(&self.table).open.len()
    }

    /// Takes a place for a new connection. At `max` open connections the oldest idle one is
    /// told to close (the newcomer is admitted meanwhile); when every connection is at work,
    /// the newcomer is refused.
    pub fn admit(self: &Arc<Self>, max: usize) -> Option<ConnectionSlot> {
        let mut table = lock(&self.table);
        if table.open.len() >= max && !evict_oldest_idle(&table) {
            return None;
        }
        let id = table.next_id;
        table.next_id += 1;
        let connection = Arc::new(Connection {
            busy: AtomicUsize::new(0),
            evict: CancellationToken::new(),
        });
        table.open.insert(id, connection.clone());
        Some(ConnectionSlot {
            id,
            connections: self.clone(),
            handle: ConnectionHandle(connection),
        })
    }

    /// Closes the oldest idle connection, to free a file descriptor; whether there was one.
    pub fn evict_one(&self) -> bool {
        evict_oldest_idle(&lock(&self.table))
    }
}

fn evict_oldest_idle(table: &Table) -> bool {
    let victim = table
        .open
        .values()
        .find(|c| c.busy.load(Ordering::Acquire) == 0 && !c.evict.is_cancelled());
    match victim {
        Some(connection) => {
            connection.evict.cancel();
            true
        }
        None => false,
    }
}

/// A connection's place in the table, released when the socket holding it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    id: u64,
    connections: Arc<Connections>,
    handle: ConnectionHandle,
}

impl ConnectionSlot {
    pub fn handle(&self) -> ConnectionHandle {
        self.handle.clone()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        lock(&self.connections.table).open.remove(&self.id);
    }
}

/// What a request handler knows of its connection (in the request's extensions).
#[derive(Debug, Clone)]
pub struct ConnectionHandle(Arc<Connection>);

impl ConnectionHandle {
    /// Marks the connection as at work until the returned guard is dropped.
    pub fn busy(&self) -> Busy {
        self.0.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.0.clone())
    }

    /// Fires when the connection should close to make room for another.
    pub fn evicted(&self) -> CancellationToken {
        self.0.evict.clone()
    }
}

/// Keeps a connection from being closed to make room; see [`ConnectionHandle::busy`].
#[derive(Debug)]
pub struct Busy(Arc<Connection>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection at work until it is written (or dropped).
#[derive(Debug)]
pub struct BusyBody<B> {
    body: B,
    _busy: Busy,
}

impl<B> BusyBody<B> {
    pub fn new(body: B, busy: Busy) -> Self {
        BusyBody { body, _busy: busy }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for BusyBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_closes_the_oldest_idle_connection() {
        let connections = Connections::new();
        let first = connections.admit(2).unwrap();
        let second = connections.admit(2).unwrap();
        let _busy = first.handle().busy();
        let third = connections.admit(2).expect("room is made");
        assert!(!first.handle().evicted().is_cancelled(), "busy: kept");
        assert!(second.handle().evicted().is_cancelled(), "idle: closed");
        drop(second);
        assert_eq!(connections.len(), 2);
        let _busy_too = third.handle().busy();
        assert!(connections.admit(2).is_none(), "everyone at work: refused");
        assert!(!connections.evict_one());
    }

    #[test]
    fn a_connection_is_idle_again_when_its_work_is_done() {
        let connections = Connections::new();
        let slot = connections.admit(1).unwrap();
        drop(slot.handle().busy());
        assert!(connections.admit(1).is_some());
        assert!(slot.handle().evicted().is_cancelled());
    }
}
