// The console's end of the degradation ladder (link_quality.js has the rule): measures how the
// caller's media arrives here (loss, round-trip time, frames decoded a second), tells the
// caller's page when that changes (its ladder takes the worse of both sides), and shows the
// caller's rung beside the measured quality.
import { t } from './i18n.js';
import { SETTLE_SECS, showLink, watchLink, worse } from './link_quality.js';
import { request } from './socket.js';

export class ConsoleLink {
  /** @type {HTMLElement} */ #element;
  /** @type {HTMLElement} */ #paused;
  /** @type {() => {callId: string, socket: any} | null} */ #call;
  /** @type {import('./link_quality.js').Rung} */ #rung = 'video';
  /** The caller's own measured quality, as reported. */
  /** @type {import('./link_quality.js').Quality} */ #callerQuality = 'good';
  /** What this console measured last, and what it last told the caller (null: not yet). */
  /** @type {import('./link_quality.js').Quality} */ #measured = 'good';
  /** @type {import('./link_quality.js').Quality | null} */ #told = null;
  /** Samples still to pass before measuring counts (a new link waits for its first keyframe). */
  #settle = 0;
  #stop = () => {};

  /**
   * @param {object} options
   * @param {HTMLElement} options.element the indicator (`data-testid=link-quality`)
   * @param {HTMLElement} options.paused over the video box: why the picture stopped
   * @param {() => {callId: string, socket: any} | null} options.call the open call now
   */
  constructor({ element, paused, call }) {
    this.#element = element;
    this.#paused = paused;
    this.#call = call;
  }

  /** The call's media link is up: measure it every second. @param {RTCPeerConnection} pc */
  opened(pc) {
    this.#stop();
    this.#told = null;
    this.#settle = SETTLE_SECS;
    this.#stop = watchLink(pc, {
      video: 'inbound',
      expectVideo: () => this.#rung === 'video',
      onQuality: (quality) => {
        if (this.#settle > 0) {
          this.#settle -= 1;
          return;
        }
        this.#measured = quality;
        this.#show();
        if (quality !== this.#told) {
          this.#tell(quality);
        }
      },
    });
  }

  /** The media link, or the call, is gone. */
  closed() {
    this.#stop();
    this.#stop = () => {};
  }

  /** The call is no longer open here: the indicator goes, the next call starts afresh. */
  reset() {
    this.closed();
    this.#rung = 'video';
    this.#callerQuality = 'good';
    this.#measured = 'good';
    this.#element.hidden = true;
    this.#showPaused();
  }

  /**
   * The caller's page says which rung the call is on and what it measures there.
   * @param {{rung: import('./link_quality.js').Rung | null, quality: import('./link_quality.js').Quality}} event
   */
  fromCaller(event) {
    if (event.rung && event.rung !== this.#rung) {
      this.#rung = event.rung;
      this.#measured = 'good';
      this.#told = null; // the caller forgot our report: measure the new rung and say it
      this.#settle = SETTLE_SECS;
    }
    this.#callerQuality = event.quality;
    this.#show();
  }

  #show() {
    showLink(this.#element, this.#rung, worse(this.#measured, this.#callerQuality));
    this.#showPaused();
  }

  /** Over the video box below the video rung, so a frozen last frame is not taken for live. */
  #showPaused() {
    const rung = this.#element.hidden ? 'video' : this.#rung;
    this.#paused.dataset.rung = rung === 'video' ? '' : rung;
    this.#paused.hidden = rung === 'video';
    if (rung === 'audio') {
      this.#paused.textContent = t('link.paused.audio');
    } else if (rung === 'text') {
      this.#paused.textContent = t('link.paused.text');
    }
  }

  /** @param {import('./link_quality.js').Quality} quality */
  #tell(quality) {
    const call = this.#call();
    if (!call || !call.socket?.connected) {
      return;
    }
    this.#told = quality;
    request(call.socket, 'link', { call_id: call.callId, quality }).catch((error) => {
      this.#told = null;
      console.warn('console: link', error);
    });
  }
}
