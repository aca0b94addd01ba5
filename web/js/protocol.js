// wsjpeg viewer: the wire format of /stream, as pure functions (no DOM, no sockets).

const META_MAGIC = [0x57, 0x53, 0x4a, 0x31]; // "WSJ1"
const META_MIN_LENGTH = 24;
const UNIT_HEADER_MIN_LENGTH = 25; // the H.264 header: the meta header and a flags byte
const KEYFRAME_FLAG = 1;
const TWO_POW_32 = 4294967296;

const hasMagic = (bytes) => META_MAGIC.every((b, i) => bytes[i] === b);
// A big-endian u64 as a number: exact up to 2^53, which covers sequences and Unix µs.
const readU64 = (view, at) => view.getUint32(at) * TWO_POW_32 + view.getUint32(at + 4);

/**
 * One binary message (an ArrayBuffer): a bare JPEG, or (with ?meta=1) a "WSJ1" header — u32
 * header length, u64 sequence number, u64 capture time in µs, all big-endian — and the JPEG.
 * Returns { jpeg, sequence, captureUs } (sequence and captureUs null for a bare JPEG), or null
 * for a message that is neither.
 */
export function parseFrame(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length >= META_MIN_LENGTH && hasMagic(bytes)) {
    const view = new DataView(buffer);
    const headerLength = view.getUint32(4);
    if (headerLength < META_MIN_LENGTH || headerLength >= bytes.length) return null;
    return {
      jpeg: bytes.subarray(headerLength),
      sequence: readU64(view, 8),
      captureUs: readU64(view, 16),
    };
  }
  if (bytes.length > 2 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    return { jpeg: bytes, sequence: null, captureUs: null };
  }
  return null;
}

/**
 * One binary message of `/stream?codec=h264` (an ArrayBuffer): a "WSJ1" header — u32 header
 * length (32), u64 sequence number, u64 capture time in µs, u8 flags (bit 0: keyframe), reserved
 * bytes, all big-endian — and one access unit in Annex B. Returns { data, sequence, captureUs,
 * keyframe }, or null for anything else. A longer header than this page knows is skipped.
 */
export function parseAccessUnit(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < UNIT_HEADER_MIN_LENGTH || !hasMagic(bytes)) return null;
  const view = new DataView(buffer);
  const headerLength = view.getUint32(4);
  if (headerLength < UNIT_HEADER_MIN_LENGTH || headerLength >= bytes.length) return null;
  return {
    data: bytes.subarray(headerLength),
    sequence: readU64(view, 8),
    captureUs: readU64(view, 16),
    keyframe: (bytes[24] & KEYFRAME_FLAG) !== 0,
  };
}

/**
 * An `h264` message (or the `h264` object of `hello`) as a VideoDecoder configuration, or null
 * without a codec string.
 */
export function h264DecoderConfig(msg) {
  if (!msg || typeof msg.codec !== 'string' || !/^avc[13]\./.test(msg.codec)) return null;
  const config = { codec: msg.codec, optimizeForLatency: true };
  if (Number.isInteger(msg.width) && msg.width > 0 && Number.isInteger(msg.height) && msg.height > 0) {
    config.codedWidth = msg.width;
    config.codedHeight = msg.height;
  }
  return config;
}

/** What the close code of a connection that was open says, in words. */
export function closeReason(code) {
  switch (code) {
    case 1001: return 'The server stopped';
    case 1003: return 'The server does not offer this stream';
    case 1008: return 'The server refused this viewer';
    case 1009: return 'The server closed the connection (message too big)';
    case 1013: return 'The server has too many viewers';
    case 1011: return 'The server hit an error';
    default: return 'Connection lost';
  }
}

/** The camera state and message, with anything that is not a string as ''. */
export function cameraState(state, message) {
  return {
    state: typeof state === 'string' ? state : '',
    message: typeof message === 'string' ? message : '',
  };
}

/** The camera from a `hello`: an object { state, message } or a bare state with `message`. */
export function helloCamera(msg) {
  if (!msg.camera) return null;
  return typeof msg.camera === 'object'
    ? cameraState(msg.camera.state, msg.camera.message)
    : cameraState(msg.camera, msg.message);
}

/** A `recording` message, with every field of the right type. */
export function recordingState(msg) {
  return {
    active: msg.active === true,
    control: msg.control === true,
    started: typeof msg.started === 'string' ? msg.started : '',
    format: typeof msg.format === 'string' ? msg.format : '',
    error: typeof msg.error === 'string' ? msg.error : '',
  };
}
