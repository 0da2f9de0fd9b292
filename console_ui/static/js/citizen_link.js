// The caller's end of the degradation ladder (link_quality.js has the rule): measures the call's
// peer connection every second, climbs or steps down, stops or resumes the camera on the video
// sender (`replaceTrack`, no new offer), shows the rung, and tells the operator's console.
import { t } from './i18n.js';
import { Ladder, showLink, watchLink, worse } from './link_quality.js';
import { request } from './socket.js';

const HINT_TEXT = {
  audio: () => t('link.hint.audio'),
  text: () => t('link.hint.text'),
};

export class CitizenLink {
  /** @type {HTMLElement} */ #element;
  /** @type {() => MediaStreamTrack | null} */ #camera;
  /** @type {() => any} */ #socket;
  /** @type {Ladder} */ #ladder;
  /** @type {RTCRtpSender | null} */ #sender = null;
  /** The operator's latest report for this rung (null: none since the rung changed). */
  /** @type {import('./link_quality.js').Quality | null} */ #remote = null;
  /** @type {import('./link_quality.js').Rung} */ #startAt = 'video';
  /** Admission refused the media: no link to measure, nothing to tell the console. */
  #busy = false;
  #stop = () => {};

  /**
   * @param {object} options
   * @param {HTMLElement} options.element the indicator (`data-testid=link-quality`)
   * @param {() => MediaStreamTrack | null} options.camera the camera track now, if any
   * @param {() => any} options.socket the call's socket now
   */
  constructor({ element, camera, socket }) {
    this.#element = element;
    this.#camera = camera;
    this.#socket = socket;
    this.#ladder = new Ladder({ onChange: (rung, quality) => this.#changed(rung, quality) });
  }

  /** Whether the camera goes out now: on the video rung only. */
  get sendsVideo() {
    return this.#ladder.rung === 'video';
  }

  /**
   * A new peer connection is up: measure it, from the video rung (or audio after admission
   * refused the media: the call climbs to video once the link has been good long enough).
   * @param {RTCPeerConnection} pc
   * @param {RTCRtpSender | null} sender the camera's sender (null without a camera)
   */
  opened(pc, sender) {
    this.#stop();
    this.#sender = sender;
    this.#remote = null;
    this.#busy = false;
    const was = this.#ladder.rung;
    // Without a camera the call has no video rung to climb to.
    this.#ladder.top = sender ? 'video' : 'audio';
    this.#ladder.reset(sender ? this.#startAt : 'audio'); // tells #changed when the rung moves
    this.#startAt = 'video';
    if (this.#ladder.rung === was) {
      this.#changed(was, this.#ladder.quality);
    }
    this.#stop = watchLink(pc, {
      video: 'outbound',
      expectVideo: () => this.#ladder.rung === 'video' && Boolean(this.#sender?.track),
      onQuality: (quality) => this.#ladder.feed(worse(quality, this.#remote)),
    });
  }

  /** The peer connection has been let go. */
  closed() {
    this.#stop();
    this.#stop = () => {};
    this.#sender = null;
  }

  /** Admission refused the call's media (the node is at capacity): the chat carries the call
   * now, and the next link starts at audio. */
  refused() {
    this.#startAt = 'audio';
    if (!this.#busy) {
      this.#busy = true;
      const was = this.#ladder.rung;
      this.#ladder.reset('text'); // tells #changed when the rung moves
      if (was === 'text') {
        this.#changed('text', this.#ladder.quality);
      }
    }
  }

  /** The operator's console reports how the caller's media arrives there. @param {import('./link_quality.js').Quality} quality */
  remote(quality) {
    this.#remote = quality;
  }

  /** Tells the console the rung again (the call was just answered: a console is there now). */
  announce() {
    this.#report(this.#ladder.rung, this.#ladder.quality);
  }

  /**
   * @param {import('./link_quality.js').Rung} rung
   * @param {import('./link_quality.js').Quality} quality
   */
  #changed(rung, quality) {
    const before = this.#element.dataset.rung;
    showLink(this.#element, rung, quality);
    const hint = /** @type {HTMLElement} */ (this.#element.querySelector('[data-field=hint]'));
    const qualityText = /** @type {HTMLElement} */ (this.#element.querySelector('[data-field=quality]'));
    // Refused for load, nothing was measured: say what is not available instead.
    qualityText.hidden = this.#busy;
    if (this.#busy) {
      this.#element.dataset.quality = '';
    }
    hint.hidden = rung === 'video';
    hint.textContent = this.#busy ? t('link.hint.busy') : rung === 'video' ? '' : HINT_TEXT[rung]();
    if (before !== rung) {
      this.#remote = null; // the console measures the new rung afresh
      this.#useCamera();
    }
    this.#report(rung, quality);
  }

  /** The camera on the sender on the video rung, nothing on it below (sound goes on). */
  async #useCamera() {
    const sender = this.#sender;
    if (!sender) {
      return;
    }
    const track = this.sendsVideo ? this.#camera() : null;
    if (sender.track !== track) {
      try {
        await sender.replaceTrack(track);
      } catch (error) {
        console.warn('citizen: rung not applied', error);
      }
    }
  }

  /**
   * @param {import('./link_quality.js').Rung} rung
   * @param {import('./link_quality.js').Quality} quality
   */
  #report(rung, quality) {
    const socket = this.#socket();
    if (socket?.connected && !this.#busy) {
      request(socket, 'link', { rung, quality }).catch((error) => console.warn('citizen: link', error));
    }
  }
}
