// wsjpeg viewer: the WebSocket to /stream — connecting, reconnecting with backoff, noticing a
// server that went silent, and sorting what it sends.

import { mono } from './clock.js';
import { closeReason } from './protocol.js';

export const RETRY_FIRST_MS = 2000;      // first reconnect attempt
export const RETRY_MAX_MS = 15000;       // backoff ceiling
const RETRY_FACTOR = 1.5;
const CONNECT_TIMEOUT_MS = 10000;        // give up on a handshake that hangs
const SILENCE_LIMIT_MS = 45000;          // nothing at all from the server: the connection is dead

/** The wait before the next reconnect attempt, after one of `delayMs` failed too. */
export function nextRetryDelay(delayMs) {
  return Math.min(RETRY_MAX_MS, Math.round(delayMs * RETRY_FACTOR));
}

/** What to say about a lost connection: the close reason once it was open, else that it failed. */
export function lossReason(reason, wasOpen, everConnected) {
  if (wasOpen) return reason;
  return everConnected ? 'Cannot reach the server' : 'Cannot connect';
}

/** A refused handshake explained from the HTTP status of the page's own URL; '' if it does not. */
export function refusalReason(status, hasToken) {
  if (status === 401 || status === 403) {
    return hasToken ? 'Access denied: the token is not accepted' : 'Access denied: open this page with ?token=…';
  }
  return status === 503 ? 'The server is busy' : '';
}

/**
 * The connection to the server. `url()` gives the stream URL for each attempt; `probeUrl` (the
 * page, same host and token) is asked why when a handshake fails. `on` is told:
 *   connecting()  an attempt starts           open()     the socket is open
 *   message(msg)  a JSON object (not ping)    frame(buf) a binary message
 *   healthy()     the server spoke on this connection, for the first time
 *   closed()      the socket is gone (lost, or put away for the back/forward cache)
 *   lost()        now disconnected, a retry is scheduled
 *   reason()      the words for a failed connection changed
 * Call `connect()` once to start; it keeps trying from then on.
 */
export function createConnection({ url, probeUrl, hasToken, on }) {
  let socket = null;
  let generation = 0;            // bumps on every new socket; stale callbacks compare against it
  let state = 'connecting';      // connecting | connected | disconnected
  let reason = '';
  let retryDelay = RETRY_FIRST_MS;
  let retryTimer = 0;
  let retryAt = 0;
  let connectTimer = 0;
  let healthy = false;           // the server has said something on this connection
  let everConnected = false;
  let lastMessageAt = 0;
  let explaining = false;
  let badMessages = 0;           // text messages that were not JSON

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    if (socket) return;
    const mine = ++generation;
    state = 'connecting';
    on.connecting();

    let ws;
    try {
      ws = new WebSocket(url());
    } catch (err) {
      lost(mine, 'Cannot open a connection', false);
      return;
    }
    ws.binaryType = 'arraybuffer';
    socket = ws;
    let opened = false;
    connectTimer = setTimeout(() => {
      if (mine === generation && !opened) drop('The server did not answer');
    }, CONNECT_TIMEOUT_MS);

    ws.onopen = () => {
      if (mine !== generation) return;
      opened = true;
      clearTimeout(connectTimer);
      state = 'connected';
      everConnected = true;
      lastMessageAt = mono();
      on.open();
    };
    ws.onmessage = (event) => {
      if (mine !== generation) return;
      lastMessageAt = mono();
      if (typeof event.data === 'string') {
        onText(event.data);
      } else {
        markHealthy();
        on.frame(event.data);
      }
    };
    ws.onerror = () => { /* a close event follows */ };
    ws.onclose = (event) => {
      if (mine !== generation) return;
      lost(mine, closeReason(event.code), opened);
    };
  }

  function onText(text) {
    let msg;
    try { msg = JSON.parse(text); } catch (err) { badMessages++; return; }
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'ping') {
      send({ type: 'pong' });
      return;
    }
    on.message(msg);
    if (msg.type === 'hello' || msg.type === 'status') markHealthy();
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  // The server is really talking to us: from now on a loss starts the backoff afresh.
  function markHealthy() {
    if (healthy) return;
    healthy = true;
    retryDelay = RETRY_FIRST_MS;
    on.healthy();
  }

  // Give up on the current socket at once (do not wait for a dead peer's close handshake).
  function drop(why) {
    const ws = socket;
    const mine = generation;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch (err) { /* already closed */ }
    }
    lost(mine, why, state === 'connected');
  }

  function lost(mine, why, wasOpen) {
    if (mine !== generation) return;
    generation++;
    socket = null;
    healthy = false;
    clearTimeout(connectTimer);
    on.closed();
    state = 'disconnected';
    reason = lossReason(why, wasOpen, everConnected);
    scheduleRetry();
    on.lost();
    if (!wasOpen) explainRefusal();
  }

  // Closes the socket on purpose (no loss, no retry).
  function close() {
    if (!socket) return;
    const ws = socket;
    generation++;
    socket = null;
    healthy = false;
    clearTimeout(connectTimer);
    on.closed();
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(1000); } catch (err) { /* ignore */ }
  }

  function scheduleRetry() {
    clearTimeout(retryTimer);
    const delay = retryDelay;
    retryDelay = nextRetryDelay(retryDelay);
    retryAt = mono() + delay;
    retryTimer = setTimeout(() => { retryTimer = 0; connect(); }, delay);
  }

  // A refused handshake looks like any network failure to a WebSocket; ask the page's own URL
  // (same host, same token) whether the token is the problem.
  function explainRefusal() {
    if (explaining) return;
    explaining = true;
    fetch(probeUrl, { method: 'HEAD', cache: 'no-store', credentials: 'same-origin' })
      .then((res) => {
        if (state !== 'disconnected') return;
        reason = refusalReason(res.status, hasToken) || reason;
        on.reason();
      })
      .catch(() => { /* unreachable: the generic text already says so */ })
      .finally(() => { explaining = false; });
  }

  return {
    /** connecting | connected | disconnected */
    get state() { return state; },
    get everConnected() { return everConnected; },
    get healthy() { return healthy; },
    /** Why the connection failed, in words (while disconnected). */
    get reason() { return reason; },
    /** True while a reconnect attempt is scheduled. */
    get retrying() { return retryTimer !== 0; },
    /** When the scheduled attempt starts, on the mono() clock. */
    get retryAt() { return retryAt; },
    get badMessages() { return badMessages; },

    connect,
    send,

    /** Reconnect now instead of after the backoff (back online, tab visible again). */
    retryNow() {
      if (state === 'disconnected') connect();
    },

    /** Back from the back/forward cache: reconnect if `suspend` closed the socket. */
    reopen() {
      if (!socket) connect();
    },

    /** Going into the back/forward cache: close cleanly, `reopen` on return. */
    suspend: close,

    /** Closes the socket cleanly and opens a new one at once (`url()` has changed). */
    restart() {
      close();
      connect();
    },

    /** Drops a connection the server has not used for a long time (unless we paused it). */
    checkSilence(paused) {
      if (state === 'connected' && !paused && mono() - lastMessageAt > SILENCE_LIMIT_MS) {
        drop('The server stopped answering');
      }
    },
  };
}
