// wsjpeg viewer: keeping a media element at the live edge of what it has buffered, and what of
// its buffer has been played out. Pure decisions on times in seconds, no DOM.
//
// Pictures are appended as they come, so what is buffered ahead of the playhead is the delay the
// player adds. It grows whenever playback waits for a late picture and then goes on from where it
// waited; the player is moved to the newest picture instead (a seek, not a faster playback rate:
// some browsers rebuffer on rate changes).

/** Behind the newest buffered picture by more than this: jump to it at once. */
export const BEHIND_LIMIT_S = 0.15;
/** More than this many frames ahead of the playhead, for SETTLE_MS on end: jump too. */
export const AHEAD_FRAMES = 2;
export const SETTLE_MS = 1000;
/** Past the end of what is buffered by this much: that is no longer the stream. */
const PAST_END_S = 1;
/** Buffer before a keyframe that is not worth a remove() of its own. */
export const MIN_REMOVE_S = 0.5;

/**
 * Where the playhead should go, or null to let it play. `ranges`: the buffered time ranges, as
 * [start, end] pairs in order; `time`: the playhead; `frameS`: how long a picture lasts;
 * `aheadForMs`: how long the playhead has been more than AHEAD_FRAMES behind the end (0 if it
 * is not). The target is the start of the newest picture: it is shown at once, and the next one
 * follows on as it is appended.
 */
export function liveSeekTarget(ranges, time, frameS, aheadForMs = 0) {
  if (ranges.length === 0) return null;
  const [start, end] = ranges[ranges.length - 1];
  const target = Math.max(start, end - frameS);
  // In an older range or a gap (the server dropped to a keyframe, or the player just started):
  // nothing before the newest range is worth waiting for.
  if (time < start) return target;
  if (time > end + PAST_END_S) return target;
  const behind = end - time;
  if (behind > BEHIND_LIMIT_S) return target;
  if (behind > AHEAD_FRAMES * frameS && aheadForMs >= SETTLE_MS) return target;
  return null;
}

/** Whether the playhead is more than AHEAD_FRAMES behind the end of the buffer. */
export function aheadOfPlayhead(ranges, time, frameS) {
  if (ranges.length === 0) return false;
  const end = ranges[ranges.length - 1][1];
  return time <= end && end - time > AHEAD_FRAMES * frameS;
}

/**
 * The end of the buffer that has been played out and can be removed — from the start of the
 * buffer to the newest keyframe at or before the playhead (removing less would take the frames
 * the pictures still to come are decoded from) — or null when that is not worth a remove.
 * `keyframes`: the times of keyframes appended, in order.
 */
export function playedOutEnd(ranges, time, keyframes) {
  if (ranges.length === 0) return null;
  let end = null;
  for (const k of keyframes) {
    if (k > time) break;
    end = k;
  }
  if (end === null || end - ranges[0][0] < MIN_REMOVE_S) return null;
  return end;
}

/** The buffered time ranges of a media element or SourceBuffer as [start, end] pairs. */
export function rangesOf(timeRanges) {
  const ranges = [];
  for (let i = 0; i < timeRanges.length; i++) ranges.push([timeRanges.start(i), timeRanges.end(i)]);
  return ranges;
}
