// wsjpeg viewer: what the page needs to know of a fragmented MP4 message, read from its boxes
// (ISO/IEC 14496-12). Pure functions, no DOM.

const TWO_POW_32 = 4294967296;

// trun flags (§8.8.8)
const DATA_OFFSET = 0x1;
const FIRST_SAMPLE_FLAGS = 0x4;
const SAMPLE_DURATION = 0x100;
const SAMPLE_SIZE = 0x200;
const SAMPLE_FLAGS = 0x400;
const SAMPLE_CTO = 0x800;
// tfhd flags (§8.8.7)
const TFHD_BASE_DATA_OFFSET = 0x1;
const TFHD_DESCRIPTION = 0x2;
const TFHD_DURATION = 0x8;
const TFHD_SIZE = 0x10;
const TFHD_FLAGS = 0x20;
// A sample flag: the sample is not a sync sample (§8.8.3.1).
const NON_SYNC = 0x10000;

const type = (bytes, at) => String.fromCharCode(bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]);

/** The boxes in bytes [start, end): { type, start, end } each, with `start` past its header. */
function boxes(bytes, view, start, end) {
  const found = [];
  let at = start;
  while (at + 8 <= end) {
    let size = view.getUint32(at);
    let header = 8;
    if (size === 1) {
      if (at + 16 > end) return null;
      size = view.getUint32(at + 8) * TWO_POW_32 + view.getUint32(at + 12);
      header = 16;
    } else if (size === 0) {
      size = end - at;
    }
    if (size < header || at + size > end) return null;
    found.push({ type: type(bytes, at), start: at + header, end: at + size });
    at += size;
  }
  return at === end ? found : null;
}

const child = (list, name) => (list || []).find((b) => b.type === name);

/**
 * One binary message of `/stream?codec=h264&container=fmp4` (an ArrayBuffer):
 *   { kind: 'init' }  an initialisation segment (ftyp + moov)
 *   { kind: 'fragment', sequence, decodeUs, durationUs, keyframe }  a moof + mdat: its
 *     sequence number, the decode time of its first sample (the capture time, in µs: the
 *     server's timescale), the duration of its samples and whether the first is a sync sample
 * or null for anything else.
 */
export function parseSegment(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  const top = boxes(bytes, view, 0, bytes.length);
  if (!top || top.length === 0) return null;
  if (child(top, 'moov')) return { kind: 'init' };
  const moof = child(top, 'moof');
  if (!moof || !child(top, 'mdat')) return null;
  const inMoof = boxes(bytes, view, moof.start, moof.end);
  const mfhd = child(inMoof, 'mfhd');
  const traf = child(inMoof, 'traf');
  if (!mfhd || !traf || mfhd.end - mfhd.start < 8) return null;
  const inTraf = boxes(bytes, view, traf.start, traf.end);
  const tfhd = child(inTraf, 'tfhd');
  const tfdt = child(inTraf, 'tfdt');
  const trun = child(inTraf, 'trun');
  if (!tfhd || !tfdt || !trun) return null;

  // Defaults from tfhd, for what trun does not say per sample.
  const tfhdFlags = view.getUint32(tfhd.start) & 0xffffff;
  let at = tfhd.start + 8; // version/flags, track ID
  if (tfhdFlags & TFHD_BASE_DATA_OFFSET) at += 8;
  if (tfhdFlags & TFHD_DESCRIPTION) at += 4;
  let defaultDuration = 0;
  let defaultFlags = 0;
  if (tfhdFlags & TFHD_DURATION) { defaultDuration = view.getUint32(at); at += 4; }
  if (tfhdFlags & TFHD_SIZE) at += 4;
  if (tfhdFlags & TFHD_FLAGS) { defaultFlags = view.getUint32(at); at += 4; }
  if (at > tfhd.end) return null;

  const tfdtVersion = bytes[tfdt.start];
  if (tfdt.end - tfdt.start < (tfdtVersion === 1 ? 12 : 8)) return null;
  const decodeUs = tfdtVersion === 1
    ? view.getUint32(tfdt.start + 4) * TWO_POW_32 + view.getUint32(tfdt.start + 8)
    : view.getUint32(tfdt.start + 4);

  const trunFlags = view.getUint32(trun.start) & 0xffffff;
  const samples = view.getUint32(trun.start + 4);
  at = trun.start + 8;
  if (trunFlags & DATA_OFFSET) at += 4;
  let firstFlags = null;
  if (trunFlags & FIRST_SAMPLE_FLAGS) { firstFlags = view.getUint32(at); at += 4; }
  const perSample = [SAMPLE_DURATION, SAMPLE_SIZE, SAMPLE_FLAGS, SAMPLE_CTO].filter((f) => trunFlags & f).length * 4;
  if (samples === 0 || at + samples * perSample > trun.end) return null;
  let durationUs = 0;
  for (let i = 0; i < samples; i++) {
    let field = at + i * perSample;
    durationUs += trunFlags & SAMPLE_DURATION ? view.getUint32(field) : defaultDuration;
    if (i === 0 && firstFlags === null) {
      if (trunFlags & SAMPLE_DURATION) field += 4;
      if (trunFlags & SAMPLE_SIZE) field += 4;
      firstFlags = trunFlags & SAMPLE_FLAGS ? view.getUint32(field) : defaultFlags;
    }
  }
  return {
    kind: 'fragment',
    sequence: view.getUint32(mfhd.start + 4),
    decodeUs,
    durationUs,
    keyframe: (firstFlags & NON_SYNC) === 0,
  };
}
