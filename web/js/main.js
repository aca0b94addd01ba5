// wsjpeg viewer: the entry point. Finds the page's elements, builds the parts, wires them
// together and connects. The parts keep their own state; what one needs of another it is
// handed here, as a function or a view of plain values.

import { createBitrateMeter } from './bitrate.js';
import { createClock, mono } from './clock.js';
import { codecPreference } from './codecs.js';
import { createCodecSwitch } from './codecswitch.js';
import { createConnection } from './connection.js';
import { bindKeys, createPause } from './controls.js';
import { createDetectionView } from './detectionview.js';
import { createToast, setText } from './dom.js';
import { formatServerInfo } from './format.js';
import { createFullscreen } from './fullscreen.js';
import { createH264Decoder } from './h264decoder.js';
import { addressList, createHelp, rtspOf } from './help.js';
import { createLinkHealth } from './linkhealth.js';
import { createMseDecoder } from './msedecoder.js';
import { createNotice, noticeFor } from './notice.js';
import { cameraState, helloCamera } from './protocol.js';
import { createRecording } from './recording.js';
import { createRecordingsDrawer } from './recordings.js';
import { createRenderer } from './render.js';
import { createSnapshot } from './snapshot.js';
import { createStatsBar } from './stats.js';
import { createStatusView } from './status.js';
import { endpointUrl, pageToken, streamUrl, withoutToken } from './urls.js';

const UI_TICK_MS = 500;

function startViewer() {
  const byId = (id) => document.getElementById(id);
  const canvas = byId('view');
  const stage = byId('stage');
  const token = pageToken(location.search);
  // The server set the token as a cookie with this page (HttpOnly): a reload works without it,
  // so it leaves the address bar and the history, where it would be seen and shared.
  if (token !== null) history.replaceState(history.state, '', withoutToken(location.href));
  const endpoint = (path, params) => endpointUrl(path, location.href, token, params);
  const toast = createToast(byId('toast'));

  const clock = createClock((message) => connection.send(message));
  const frames = createRenderer(canvas, {
    clockOffsetUs: () => clock.offsetUs,
    onDrawn,
    decorate: (...args) => detections.decorate(...args),
  });
  const detections = createDetectionView({
    button: byId('detections'),
    controls: byId('controls'),
    clockOffsetUs: () => clock.offsetUs,
    shownPicture: () => frames.shown,
    repaint: () => frames.repaint(),
  });
  const bitrate = createBitrateMeter();
  const link = createLinkHealth();
  let cameraFps = 0;            // the camera's rate, from the hello (0: not said)
  const notice = createNotice({
    box: byId('notice'),
    text: byId('notice-text'),
    help: byId('notice-help'),
    close: byId('notice-close'),
  });
  let latestLatencyMs = null;   // the last latency figure, for the test hook
  let switchingTo = '';         // the codec a reconnect is for, until it is open
  const codecs = createCodecSwitch({
    button: byId('codec'),
    label: byId('codec-label'),
    controls: byId('controls'),
  }, {
    preference: codecPreference(location.search),
    onSwitch(name) {
      // Not connected: the next attempt asks for the right codec by itself.
      if (connection.state !== 'connected') return;
      switchingTo = name;
      connection.restart();
    },
    note: (text) => toast(text),
  });
  // H.264 is decoded by WebCodecs or played by the video player (MSE): the rest of the page
  // does not care which, `h264()` is the one of the current connection.
  const decoders = {
    webcodecs: createH264Decoder({ frames, onFailure: (reason) => codecs.fail(reason) }),
    mse: createMseDecoder({ frames, host: stage, onFailure: (reason) => codecs.fail(reason) }),
  };
  const h264 = () => decoders[codecs.path] || decoders.webcodecs;
  const status = createStatusView({
    status: byId('status'),
    statusText: byId('status-text'),
    camera: byId('camera'),
    announcer: byId('announcer'),
    stage,
    overlay: byId('overlay'),
    spinner: byId('spinner'),
    overlayText: byId('overlay-text'),
    retry: byId('retry'),
  });
  byId('retry').addEventListener('click', () => connection.retryNow());
  const renderStats = createStatsBar({
    stats: byId('stats'),
    fps: byId('fps'),
    resolution: byId('resolution'),
    latency: byId('latency'),
    dropped: byId('dropped'),
    objectsFigure: byId('objects-figure'),
    objects: byId('objects'),
    codec: byId('video-codec'),
    bitrate: byId('bitrate'),
  });
  const connection = createConnection({
    url: () => {
      const { codec, path } = codecs.stream();
      return streamUrl(location.href, token, codec, path === 'mse' ? 'fmp4' : '');
    },
    probeUrl: location.href,
    hasToken: !!token,
    on: {
      connecting() {
        renderStatus();
        renderOverlay();
      },
      open() {
        switchingTo = '';
        recording.reset();
        frames.restart();
        bitrate.restart(mono());
        link.reset();
        const h264Stream = codecs.current === 'h264';
        if (h264Stream) h264().start();
        detections.reset(h264Stream ? 'time' : 'frame');
        if (frames.paused) connection.send({ type: 'pause' });
        clock.start();
        renderStatus();
        renderOverlay();
      },
      message: onMessage,
      frame(buffer) {
        bitrate.add(buffer.byteLength, mono());
        if (codecs.current === 'h264') h264().receive(buffer);
        else frames.receive(buffer);
      },
      healthy: () => status.announce(view()),
      closed() {
        clock.stop();
        decoders.webcodecs.stop();
        decoders.mse.stop();
        frames.discard();
        detections.reset();
      },
      lost() {
        switchingTo = '';
        renderStatus();
        renderOverlay();
        renderFigures();
      },
      reason: () => renderOverlay(),
    },
  });
  const recording = createRecording({
    rec: byId('rec'),
    recTime: byId('rec-time'),
    recLabel: byId('rec-label'),
    recError: byId('rec-error'),
    recAnnouncer: byId('rec-announcer'),
    record: byId('record'),
    recordLabel: byId('record-label'),
  }, {
    endpoint,
    toast,
    serverNowMs: () => clock.serverNowMs(),
    connected: () => connection.state === 'connected',
  });
  const pause = createPause({
    button: byId('pause'),
    label: byId('pause-label'),
    frames,
    send: connection.send,
    hidden: () => document.visibilityState === 'hidden',
    onChange() {
      h264().setPaused(frames.paused);
      if (!frames.paused) bitrate.restart(mono());
      renderStatus();
      renderOverlay();
      renderFigures();
    },
  });
  const takeSnapshot = createSnapshot({
    button: byId('snapshot'),
    canvas,
    endpoint,
    toast,
    frozen: () => pause.user && frames.hasPicture,
  });
  const fullscreen = createFullscreen({
    stage,
    button: byId('fullscreen'),
    exitButton: byId('fs-exit'),
    canvas,
  });
  const recordings = createRecordingsDrawer({
    dialog: byId('recordings'),
    list: byId('recordings-list'),
    player: byId('recordings-player'),
    status: byId('recordings-status'),
    close: byId('recordings-close'),
    button: byId('recordings-button'),
  }, { endpoint });
  const help = createHelp({
    dialog: byId('help'),
    shortcuts: byId('help-shortcuts'),
    addresses: byId('help-addresses'),
    button: byId('help-button'),
    close: byId('help-close'),
  }, {
    async addresses() {
      // The device says in /status whether it serves RTSP, and where.
      let rtsp = null;
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), 3000);
      try {
        const response = await fetch(endpoint('status'), { cache: 'no-store', signal: abort.signal });
        if (response.ok) rtsp = rtspOf(await response.json());
      } catch (err) {
        // No /status (a plain server) or no answer: the list goes without RTSP.
      } finally {
        clearTimeout(timer);
      }
      return addressList({ pageHref: location.href, token, h264Offered: codecs.offered, rtsp });
    },
    toast,
  });
  bindKeys({
    help: help.toggle,
    modal: () => help.shown || recordings.shown,
    fullscreen: fullscreen.toggle,
    snapshot: takeSnapshot,
    pause: pause.toggle,
    detections: detections.toggle,
    codec: codecs.cycle,
    escape: fullscreen.leavePseudo,
  });

  // What the status line and the overlay are drawn from.
  function view() {
    return {
      connection: connection.state,
      everConnected: connection.everConnected,
      healthy: connection.healthy,
      reason: connection.reason,
      retrying: connection.retrying,
      retryInMs: connection.retryAt - mono(),
      userPaused: pause.user,
      paused: frames.paused,
      hasPicture: frames.hasPicture,
      quietMs: frames.quietMs(),
      switchingTo,
      link: link.state,
    };
  }

  // Counted while pictures are live: a pause or a lull is no slow link.
  function judgeLink() {
    const live = connection.state === 'connected' && !frames.paused && frames.hasPicture &&
      frames.quietMs() < 2000;
    if (!live) {
      link.reset();
      return;
    }
    const counters = frames.counters();
    link.add(mono(), counters.drawn, counters.gaps + counters.skippedLocally, cameraFps);
  }

  function renderNotice() {
    const connected = connection.state === 'connected';
    notice.render(noticeFor({
      connected,
      live: connected && !frames.paused && frames.hasPicture,
      link: link.state,
      codec: codecs.current,
      h264Offered: codecs.offered,
      h264Why: codecs.why,
      secure: codecs.secure,
      bitsPerSecond: bitrate.bitsPerSecond(mono()),
    }));
  }

  function renderStatus() {
    status.render(view());
    recording.render();
  }

  function renderOverlay() {
    status.renderOverlay(view());
  }

  function renderFigures() {
    const counters = frames.counters();
    const latencyMs = frames.takeLatency();
    if (latencyMs !== null) latestLatencyMs = latencyMs;
    renderStats({
      connected: connection.state === 'connected',
      streaming: connection.state === 'connected' && frames.hasPicture &&
        (frames.paused || frames.quietMs() < 3000) && status.camera.state !== 'error',
      paused: frames.paused,
      hasPicture: frames.hasPicture,
      fps: frames.framesPerSecond(),
      width: frames.width,
      height: frames.height,
      latencyMs,
      metaSeen: frames.metaSeen,
      clockAssumed: clock.assumed,
      gaps: counters.gaps,
      skippedLocally: counters.skippedLocally,
      codec: codecs.shown,
      codecTitle: codecs.title,
      bitsPerSecond: bitrate.bitsPerSecond(mono()),
      detections: detections.figures(),
    });
  }

  function onDrawn(first) {
    if (first) {
      renderFigures();
      renderOverlay();
    } else if (status.overlayShown && connection.state === 'connected' && !pause.user) {
      renderOverlay();
    }
  }

  function setCamera(next) {
    if (!status.setCamera(next)) return;
    renderStatus();
    renderOverlay();
  }

  function onMessage(msg) {
    switch (msg.type) {
      case 'hello': {
        if (msg.server || msg.version) setText(byId('server-info'), formatServerInfo(msg.server, msg.version));
        if (msg.width > 0 && msg.height > 0) frames.presetSize(msg.width, msg.height);
        cameraFps = Number.isFinite(msg.framerate) && msg.framerate > 0 ? msg.framerate : 0;
        const camera = helloCamera(msg);
        if (camera) setCamera(camera);
        codecs.onHello(msg);
        break;
      }
      case 'status':
        setCamera(cameraState(msg.camera, msg.message));
        break;
      case 'time':
        clock.onReply(msg);
        break;
      case 'recording':
        recording.update(msg);
        recordings.offered = true;
        break;
      case 'detections':
        detections.receive(msg);
        break;
      case 'h264':
        if (codecs.current === 'h264') h264().configure(msg);
        break;
      default:
        break; // 'error' and anything newer: nothing to do
    }
  }

  function tick() {
    connection.checkSilence(frames.paused);
    if (codecs.current === 'h264') h264().check();
    judgeLink();
    renderFigures();
    renderOverlay();
    renderStatus();
    renderNotice();
  }

  document.addEventListener('visibilitychange', () => {
    pause.update();
    // Back in view after a failure: do not make the person wait for the backoff.
    if (document.visibilityState === 'visible') connection.retryNow();
  });
  window.addEventListener('online', () => connection.retryNow());
  // Coming back to the window is a good moment to try again, rather than at the backoff's end.
  window.addEventListener('focus', () => connection.retryNow());
  window.addEventListener('pageshow', (event) => { if (event.persisted) connection.reopen(); });
  window.addEventListener('pagehide', (event) => { if (event.persisted) connection.suspend(); });

  // A read-only view of the internals, for tests and curious people.
  Object.defineProperty(window, 'wsjpegViewer', {
    value: Object.freeze({
      stats: () => {
        const counters = frames.counters();
        return {
          connection: connection.state,
          camera: status.camera.state,
          paused: frames.paused,
          meta: frames.metaSeen,
          width: frames.width,
          height: frames.height,
          fps: frames.framesPerSecond(),
          clockOffsetUs: clock.offsetUs,
          clockSamples: clock.sampleCount,
          received: counters.received,
          drawn: counters.drawn,
          gaps: counters.gaps,
          skippedLocally: counters.skippedLocally,
          decodeErrors: counters.decodeErrors,
          badMessages: counters.badMessages + connection.badMessages,
          decoding: frames.decoding,
          pending: frames.pending,
          recording: recording.state,
          codec: codecs.current,
          codecPath: codecs.path,
          codecShown: codecs.shown,
          codecPreference: codecs.preference,
          codecNote: codecs.note,
          notice: notice.text,
          link: link.state,
          codecTitle: codecs.title,
          bitsPerSecond: bitrate.bitsPerSecond(mono()),
          latencyMs: latestLatencyMs,
          h264: decoders.webcodecs.state(),
          mse: decoders.mse.state(),
        };
      },
      /** The detections that apply to the picture on screen, and whether they are drawn. */
      detections: () => detections.state(),
    }),
  });

  setInterval(tick, UI_TICK_MS);
  renderStatus();
  renderOverlay();
  connection.connect();
}

startViewer();
