// The degradation ladder: video -> audio only -> text, and back up. A call on a weak link
// steps down instead of failing: first the caller's video stops (sound is far cheaper), then,
// if even sound is lost, the chat carries the call. The rung is decided from measured link
// quality (getStats every second: loss, round-trip time, frames per second) with hysteresis,
// here and nowhere else. The caller's page, which sends the video, runs the ladder; the console
// measures how the caller's media arrives and reports it; each side tells the other over the
// call's socket (`link`, forwarded as `call.link`). Both pages show the indicator.
import { t } from './i18n.js';

/** How often each page reads getStats. */
export const SAMPLE_MS = 1000;
/** Loss (fraction of packets) from which a link is poor, and from which it is bad. */
export const POOR_LOSS = 0.05;
export const BAD_LOSS = 0.2;
/** Round-trip time (ms) from which a link is poor, and from which it is bad. */
export const POOR_RTT_MS = 400;
export const BAD_RTT_MS = 1000;
/** Video sent or decoded below this many frames a second is a slideshow: the link is poor. */
export const MIN_VIDEO_FPS = 5;
/** Seconds of a quality too low for the rung before the call steps down. */
export const DOWN_AFTER_SECS = 3;
/** Seconds of good quality before the call climbs one rung back up. */
export const UP_AFTER_SECS = 5;
/** Seconds after a change of rung whose samples do not count (the encoder ramps up again). */
export const SETTLE_SECS = 2;

/** @typedef {'video' | 'audio' | 'text'} Rung */
/** @typedef {'good' | 'poor' | 'bad'} Quality */
/**
 * One second's measurement. Each figure is null where nothing measured it (no video sent on
 * the audio rung, no RTCP report yet).
 * @typedef {object} Sample
 * @property {number | null} loss fraction of packets lost, 0..1
 * @property {number | null} rttMs round-trip time
 * @property {number | null} videoFps video frames sent (caller) or decoded (console) a second
 */

const ORDER = { good: 0, poor: 1, bad: 2 };

/**
 * The quality one sample shows.
 * @param {Sample} sample
 * @returns {Quality}
 */
export function qualityOf(sample) {
  const { loss, rttMs, videoFps } = sample;
  if ((loss !== null && loss >= BAD_LOSS) || (rttMs !== null && rttMs >= BAD_RTT_MS)) {
    return 'bad';
  }
  if (
    (loss !== null && loss >= POOR_LOSS) ||
    (rttMs !== null && rttMs >= POOR_RTT_MS) ||
    (videoFps !== null && videoFps < MIN_VIDEO_FPS)
  ) {
    return 'poor';
  }
  return 'good';
}

/**
 * The worse of two qualities (a missing one counts as good).
 * @param {Quality} a
 * @param {Quality | null} b
 * @returns {Quality}
 */
export function worse(a, b) {
  return b !== null && ORDER[b] > ORDER[a] ? b : a;
}

/**
 * The rule with hysteresis: on video, DOWN_AFTER_SECS poor or bad seconds step down to audio;
 * on audio, that many bad seconds step down to text and UP_AFTER_SECS good ones climb to video;
 * on text, UP_AFTER_SECS seconds that are not bad climb to audio. Fed one quality a second.
 */
export class Ladder {
  /** @type {Rung} */ rung;
  /** @type {Quality} */ quality = 'good';
  /** The highest rung the call may climb to (audio for a caller without a camera). */
  /** @type {Rung} */ top = 'video';
  #low = 0;
  #high = 0;
  #settle = 0;
  /** @type {(rung: Rung, quality: Quality) => void} */ #onChange;

  /**
   * @param {object} options
   * @param {Rung} [options.rung] where the call starts (audio after admission refused media)
   * @param {(rung: Rung, quality: Quality) => void} [options.onChange] a new rung or quality
   */
  constructor({ rung = 'video', onChange } = {}) {
    this.rung = rung;
    this.#onChange = onChange || (() => {});
  }

  /** Starts again from `rung` (a new peer connection, say), counting nothing yet. @param {Rung} rung */
  reset(rung) {
    this.#low = 0;
    this.#high = 0;
    this.#settle = SETTLE_SECS;
    const changed = rung !== this.rung;
    this.rung = rung;
    if (changed) {
      this.#onChange(this.rung, this.quality);
    }
  }

  /** One second's quality. @param {Quality} quality */
  feed(quality) {
    const before = this.quality;
    this.quality = quality;
    if (this.#settle > 0) {
      this.#settle -= 1;
      if (quality !== before) {
        this.#onChange(this.rung, quality);
      }
      return;
    }
    const tooLow = this.rung === 'video' ? quality !== 'good' : quality === 'bad';
    const climbing = this.rung === 'text' ? quality !== 'bad' : quality === 'good' && this.top === 'video';
    this.#low = tooLow ? this.#low + 1 : 0;
    this.#high = climbing && this.rung !== 'video' ? this.#high + 1 : 0;
    let rung = this.rung;
    if (this.#low >= DOWN_AFTER_SECS && this.rung !== 'text') {
      rung = this.rung === 'video' ? 'audio' : 'text';
    } else if (this.#high >= UP_AFTER_SECS) {
      rung = this.rung === 'text' || this.top === 'audio' ? 'audio' : 'video';
    }
    if (rung !== this.rung) {
      this.reset(rung);
    } else if (quality !== before) {
      this.#onChange(this.rung, quality);
    }
  }
}

/**
 * Counters read from one getStats report, to be differenced a second later.
 * @typedef {object} Counters
 * @property {number} lost packets lost (inbound)
 * @property {number} received packets received (inbound)
 * @property {number} frames video frames sent (`outbound`) or decoded (inbound)
 * @property {number | null} remoteLoss the other end's latest fractionLost (RTCP), the worst kind
 * @property {number | null} rttMs RTCP or ICE round-trip time
 * @property {number} atMs when read
 */

/**
 * Reads the counters of one peer connection.
 * @param {RTCPeerConnection} pc
 * @param {'outbound' | 'inbound'} video whose video frames count: sent or decoded
 * @returns {Promise<Counters>}
 */
export async function readCounters(pc, video) {
  const counters = { lost: 0, received: 0, frames: 0, remoteLoss: null, rttMs: null, atMs: performance.now() };
  /** @type {number | null} */ let iceRttMs = null;
  const report = await pc.getStats();
  report.forEach((stat) => {
    if (stat.type === 'inbound-rtp') {
      counters.lost += Math.max(0, stat.packetsLost || 0);
      counters.received += stat.packetsReceived || 0;
      if (video === 'inbound' && stat.kind === 'video') {
        counters.frames += stat.framesDecoded || 0;
      }
    } else if (stat.type === 'outbound-rtp' && video === 'outbound' && stat.kind === 'video') {
      counters.frames += stat.framesSent || 0;
    } else if (stat.type === 'remote-inbound-rtp') {
      if (typeof stat.fractionLost === 'number') {
        counters.remoteLoss = Math.max(counters.remoteLoss ?? 0, stat.fractionLost);
      }
      if (typeof stat.roundTripTime === 'number') {
        counters.rttMs = Math.max(counters.rttMs ?? 0, stat.roundTripTime * 1000);
      }
    } else if (stat.type === 'candidate-pair' && stat.nominated && typeof stat.currentRoundTripTime === 'number') {
      iceRttMs = stat.currentRoundTripTime * 1000;
    }
  });
  counters.rttMs ??= iceRttMs;
  return counters;
}

/**
 * One second's sample from two readings.
 * @param {Counters} before
 * @param {Counters} now
 * @param {boolean} expectVideo whether video should be flowing (the video rung, with a camera)
 * @returns {Sample}
 */
export function sampleOf(before, now, expectVideo) {
  const lost = now.lost - before.lost;
  const received = now.received - before.received;
  const inboundLoss = lost + received > 0 ? Math.max(0, lost) / (lost + received) : null;
  const losses = [inboundLoss, now.remoteLoss].filter((value) => value !== null);
  const seconds = Math.max(0.001, (now.atMs - before.atMs) / 1000);
  return {
    loss: losses.length ? Math.max(...losses) : null,
    rttMs: now.rttMs,
    videoFps: expectVideo ? Math.max(0, now.frames - before.frames) / seconds : null,
  };
}

/**
 * Samples a peer connection every SAMPLE_MS and hands each second's quality on. Returns a stop
 * function.
 * @param {RTCPeerConnection} pc
 * @param {object} options
 * @param {'outbound' | 'inbound'} options.video whose video frames count
 * @param {() => boolean} options.expectVideo asked every second
 * @param {(quality: Quality, sample: Sample) => void} options.onQuality
 */
export function watchLink(pc, { video, expectVideo, onQuality }) {
  /** @type {Counters | null} */ let previous = null;
  let previousExpected = false;
  let stopped = false;
  const timer = window.setInterval(async () => {
    if (stopped || pc.connectionState === 'closed') {
      return;
    }
    let counters;
    try {
      counters = await readCounters(pc, video);
    } catch {
      return;
    }
    const expected = expectVideo();
    // A second in which video was switched on or off is not measured for video.
    if (previous && !stopped) {
      const sample = sampleOf(previous, counters, expected && previousExpected);
      onQuality(qualityOf(sample), sample);
    }
    previous = counters;
    previousExpected = expected;
  }, SAMPLE_MS);
  return () => {
    stopped = true;
    window.clearInterval(timer);
  };
}

const RUNG_TEXT = {
  video: () => t('link.rung.video'),
  audio: () => t('link.rung.audio'),
  text: () => t('link.rung.text'),
};
const QUALITY_TEXT = {
  good: () => t('link.quality.good'),
  poor: () => t('link.quality.poor'),
  bad: () => t('link.quality.bad'),
};

/**
 * Shows the rung and the quality on a page's indicator (`data-testid=link-quality`, with
 * `[data-field=rung]` and `[data-field=quality]` inside).
 * @param {HTMLElement} element
 * @param {Rung} rung
 * @param {Quality} quality
 */
export function showLink(element, rung, quality) {
  element.dataset.rung = rung;
  element.dataset.quality = quality;
  const rungText = /** @type {HTMLElement} */ (element.querySelector('[data-field=rung]'));
  const qualityText = /** @type {HTMLElement} */ (element.querySelector('[data-field=quality]'));
  rungText.textContent = RUNG_TEXT[rung]();
  qualityText.textContent = QUALITY_TEXT[quality]();
  element.hidden = false;
}
