// wsjpeg viewer: the recordings on the device — a drawer that lists them (time, length, size),
// plays an H.264 recording (MP4, which browsers play) in the page, and downloads any of them
// and its detections file. MJPEG recordings (Matroska) download only: browsers do not play them.

import { setText } from './dom.js';
import { failureText, formatElapsed } from './format.js';

const LIST_TIMEOUT_MS = 10000;

/** "850 KB", "12.4 MB", "1.2 GB". */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  if (bytes < 1e6) return `${Math.max(1, Math.round(bytes / 1e3))} KB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
  return `${(bytes / 1e9).toFixed(1)} GB`;
}

/**
 * The rows of `GET /api/recordings` as the drawer shows them: { name, when, length, size,
 * playable, inProgress, file, detections }. `url(path)` makes a server URL (relative to the page,
 * with the token); `formatTime(date)` writes the start time (the browser's locale by default).
 */
export function recordingRows(answer, url, formatTime = (d) => d.toLocaleString()) {
  const list = answer && Array.isArray(answer.recordings) ? answer.recordings : [];
  return list
    .filter((r) => r && typeof r.name === 'string' && r.name)
    .map((r) => {
      const start = new Date(r.start);
      const seconds = Number(r.duration_seconds);
      return {
        name: r.name,
        when: Number.isFinite(start.getTime()) ? formatTime(start) : r.name,
        length: Number.isFinite(seconds) ? formatElapsed(Math.max(0, Math.round(seconds))) : '',
        size: formatBytes(Number(r.size)),
        playable: /\.mp4$/i.test(r.name),
        inProgress: r.in_progress === true,
        file: url(`recordings/${encodeURIComponent(r.name)}`),
        detections: typeof r.detections === 'string' && r.detections
          ? url(`recordings/${encodeURIComponent(r.detections)}`) : '',
      };
    });
}

/**
 * The drawer: `ui` has the dialog, its list, its player (a <video>), its status line, its close
 * button and the header button that opens it (shown once the server says it records).
 * `endpoint(path)` builds a server URL with the token.
 */
export function createRecordingsDrawer(ui, { endpoint }) {
  const url = (path) => endpoint(path).href;

  function say(text) {
    setText(ui.status, text);
    ui.status.hidden = !text;
  }

  function stopPlayer() {
    ui.player.pause();
    ui.player.removeAttribute('src');
    ui.player.load();
    ui.player.hidden = true;
  }

  function play(row) {
    ui.player.hidden = false;
    ui.player.src = row.file;
    ui.player.dataset.name = row.name;
    const started = ui.player.play();
    if (started && typeof started.catch === 'function') {
      started.catch((err) => say(`This recording does not play here (${failureText(err)}): download it instead.`));
    }
  }

  function link(text, href, download, label) {
    const a = document.createElement('a');
    a.href = href;
    a.textContent = text;
    a.setAttribute('aria-label', label);
    if (download) a.download = download;
    return a;
  }

  function render(rows) {
    ui.list.replaceChildren(...rows.map((row) => {
      const item = document.createElement('li');
      const info = document.createElement('div');
      info.className = 'recording-info';
      const when = document.createElement('strong');
      when.textContent = row.when;
      const facts = document.createElement('span');
      facts.textContent = [row.length, row.size, row.inProgress ? 'recording now' : '']
        .filter(Boolean).join(' · ');
      info.append(when, facts);
      const actions = document.createElement('div');
      actions.className = 'recording-actions';
      if (row.playable) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = 'Play';
        button.setAttribute('aria-label', `Play the recording of ${row.when}`);
        button.addEventListener('click', () => play(row));
        actions.append(button);
      } else {
        const note = document.createElement('span');
        note.className = 'download-only';
        note.textContent = 'MJPEG: download only (VLC, mpv)';
        actions.append(note);
      }
      actions.append(link('Download', row.file, row.name, `Download the recording of ${row.when}`));
      if (row.detections) {
        actions.append(link('Detections', row.detections, row.name.replace(/\.[^.]+$/, '.detections.jsonl'),
          `Download the detections of ${row.when}`));
      }
      item.append(info, actions);
      return item;
    }));
    say(rows.length ? '' : 'No recordings yet.');
  }

  async function refresh() {
    say('Loading…');
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), LIST_TIMEOUT_MS);
    try {
      const response = await fetch(url('api/recordings'), { cache: 'no-store', signal: abort.signal });
      if (!response.ok) throw new Error(`the device answered ${response.status}`);
      render(recordingRows(await response.json(), url));
    } catch (err) {
      ui.list.replaceChildren();
      say(`Cannot list the recordings: ${failureText(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  async function open() {
    if (!ui.dialog.open) ui.dialog.showModal();
    stopPlayer();
    await refresh();
  }

  ui.button.addEventListener('click', open);
  ui.close.addEventListener('click', () => ui.dialog.close());
  ui.dialog.addEventListener('close', stopPlayer);
  ui.dialog.addEventListener('click', (event) => { if (event.target === ui.dialog) ui.dialog.close(); });

  return {
    open,
    get shown() { return ui.dialog.open; },
    /** Whether the device records (a `recording` message came): the button shows then. */
    set offered(yes) { ui.button.hidden = !yes; },
  };
}
