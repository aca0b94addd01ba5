// SPDX-License-Identifier: MIT
//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data even when a thread panicked while holding it: a panic elsewhere
/// must not take the stream down with it, and what is guarded here stays usable.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
