// wsjpeg viewer: the "?" panel — the keyboard shortcuts, and the addresses other programs take
// (VLC, Home Assistant, NVRs, media servers), each with a copy button.

import { setText } from './dom.js';
import { endpointUrl } from './urls.js';

export const SHORTCUTS = [
  ['P', 'Pause or go live'],
  ['S', 'Save a snapshot'],
  ['F', 'Full screen'],
  ['D', 'Detection boxes on or off'],
  ['C', 'Codec: Auto, JPEG, H.264'],
  ['?', 'This panel'],
  ['Esc', 'Close this panel, leave full screen'],
];

/**
 * The addresses of this camera, as { label, use, url }: relative to the page (`pageHref`, so a
 * reverse proxy's prefix stays), with the token it was opened with ('' or null for none);
 * LL-HLS when the server offers H.264; RTSP on the page's host name when the device reports
 * its port and path (`rtsp`: { port, path } or null).
 */
export function addressList({ pageHref, token, h264Offered, rtsp }) {
  const at = (path) => endpointUrl(path, pageHref, token).href;
  const websocket = endpointUrl('stream', pageHref, token);
  websocket.protocol = websocket.protocol === 'https:' ? 'wss:' : 'ws:';
  const list = [
    { label: 'MJPEG stream', use: 'VLC, Home Assistant (MJPEG camera), browsers', url: at('stream.mjpg') },
    { label: 'Snapshot', use: 'the newest picture as JPEG', url: at('snapshot.jpg') },
    { label: 'WebSocket', use: 'JPEG or H.264 frames, for programs of your own', url: websocket.href },
  ];
  if (h264Offered) {
    list.push({ label: 'LL-HLS', use: 'hls.js, Safari, ffmpeg, an HTTP cache in front', url: at('hls/index.m3u8') });
  }
  if (rtsp && rtsp.port > 0) {
    const credentials = token ? `wsjpeg:${encodeURIComponent(token)}@` : '';
    const host = new URL(pageHref).hostname;
    list.push({ label: 'RTSP', use: 'NVRs, Frigate, MediaMTX, ffmpeg', url: `rtsp://${credentials}${host}:${rtsp.port}${rtsp.path}` });
  }
  return list;
}

/** The RTSP port and path in `/status`'s source, or null. */
export function rtspOf(status) {
  const source = status && typeof status === 'object' ? status.source : null;
  const port = source ? Number(source['rtsp-port']) : 0;
  const path = source && typeof source['rtsp-path'] === 'string' ? source['rtsp-path'] : '';
  return port > 0 && path.startsWith('/') ? { port, path } : null;
}

/** Puts `text` on the clipboard: the Clipboard API where the page may use it, else a selection. */
async function copyText(text, field) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (err) {
      // Refused (no permission): fall back to the selection below.
    }
  }
  field.focus();
  field.select();
  try {
    return document.execCommand('copy');
  } catch (err) {
    return false;
  }
}

/**
 * The panel: `ui` has the dialog, its shortcut list, its address list and the "?" button.
 * `addresses()` resolves to the current list when the panel opens.
 */
export function createHelp(ui, { addresses, toast }) {
  function shortcutRows() {
    ui.shortcuts.replaceChildren(...SHORTCUTS.map(([key, what]) => {
      const row = document.createElement('div');
      const dt = document.createElement('dt');
      const kbd = document.createElement('kbd');
      kbd.textContent = key;
      dt.append(kbd);
      const dd = document.createElement('dd');
      dd.textContent = what;
      row.append(dt, dd);
      return row;
    }));
  }

  function addressRows(list) {
    ui.addresses.replaceChildren(...list.map(({ label, use, url }) => {
      const item = document.createElement('li');
      const head = document.createElement('div');
      const name = document.createElement('strong');
      name.textContent = label;
      const note = document.createElement('span');
      note.textContent = use;
      head.append(name, note);
      const line = document.createElement('div');
      line.className = 'address';
      const field = document.createElement('input');
      field.type = 'text';
      field.readOnly = true;
      field.value = url;
      field.setAttribute('aria-label', `${label} address`);
      const copy = document.createElement('button');
      copy.type = 'button';
      copy.textContent = 'Copy';
      copy.setAttribute('aria-label', `Copy the ${label} address`);
      copy.addEventListener('click', async () => {
        const done = await copyText(url, field);
        setText(copy, done ? 'Copied' : 'Select and copy');
        if (done) toast(`${label} address copied`);
      });
      line.append(field, copy);
      item.append(head, line);
      return item;
    }));
  }

  async function open() {
    if (ui.dialog.open) return;
    shortcutRows();
    addressRows(await addresses());
    ui.dialog.showModal();
  }

  function toggle() {
    if (ui.dialog.open) ui.dialog.close();
    else open();
  }

  ui.button.addEventListener('click', open);
  ui.close.addEventListener('click', () => ui.dialog.close());
  // A click on the backdrop (the dialog itself, outside its content) closes it.
  ui.dialog.addEventListener('click', (event) => { if (event.target === ui.dialog) ui.dialog.close(); });

  return { open, toggle, get shown() { return ui.dialog.open; } };
}
