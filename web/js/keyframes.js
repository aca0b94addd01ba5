// wsjpeg viewer: which H.264 access units to hand to the decoder. Pure logic, no WebCodecs.
//
// Inter frames only decode on top of every frame since their keyframe. So after a unit is lost
// (a gap in the sequence numbers: the server dropped this viewer to its next keyframe) or while
// the decoder is too far behind, nothing more is decoded until the next keyframe: pictures
// built on a missing one would be smeared, and a backlog would only add latency.

/** Chunks waiting in the decoder beyond which it counts as behind (the server allows 6). */
export const MAX_DECODE_QUEUE = 6;

/**
 * The gate in front of the decoder. It starts closed: the first unit decoded is a keyframe.
 * `admit(unit, queueSize)` says whether to decode `unit` ({ sequence, keyframe }) given the
 * decoder's `decodeQueueSize`; `restart()` closes it again (a new decoder, a resumed stream).
 */
export function createKeyframeGate(maxQueue = MAX_DECODE_QUEUE) {
  let waiting = true;      // for a keyframe
  let last = null;         // the sequence number of the last unit seen

  return {
    /** True while units are dropped until the next keyframe. */
    get waiting() { return waiting; },

    admit(unit, queueSize) {
      const lost = last !== null && unit.sequence !== last + 1;
      last = unit.sequence;
      const behind = queueSize > maxQueue;
      if (lost || behind) waiting = true;
      if (waiting && unit.keyframe && !behind) waiting = false;
      return !waiting;
    },

    restart() {
      waiting = true;
      last = null;
    },
  };
}
