// wsjpeg viewer: the wire format of /stream, as pure functions (no DOM, no sockets).

const META_MAGIC = [0x57, 0x53, 0x4a, 0x31]; // "WSJ1"
const META_MIN_LENGTH = 24;
const TWO_POW_32 = 4294967296;

/**
 * One binary message (an ArrayBuffer): a bare JPEG, or (with ?meta=1) a "WSJ1" header — u32
 * header length, u64 sequence number, u64 capture time in µs, all big-endian — and the JPEG.
 * Returns { jpeg, sequence, captureUs } (sequence and captureUs null for a bare JPEG), or null
 * for a message that is neither.
 */
export function parseFrame(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length >= META_MIN_LENGTH && META_MAGIC.every((b, i) => bytes[i] === b)) {
    const view = new DataView(buffer);
    const headerLength = view.getUint32(4);
    if (headerLength < META_MIN_LENGTH || headerLength >= bytes.length) return null;
    return {
      jpeg: bytes.subarray(headerLength),
      sequence: view.getUint32(8) * TWO_POW_32 + view.getUint32(12),
      captureUs: view.getUint32(16) * TWO_POW_32 + view.getUint32(20),
    };
  }
  if (bytes.length > 2 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    return { jpeg: bytes, sequence: null, captureUs: null };
  }
  return null;
}

/** What the close code of a connection that was open says, in words. */
export function closeReason(code) {
  switch (code) {
    case 1001: return 'The server stopped';
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
