// The caller's place in the queue, as the server orders it (server/actions/queue_position.py):
// "number 2 in the queue", and the time waited, counted on from the server's figure each second.
// A marked call's page is told only that it waits (no place). Hidden once the call is answered.
import { formatDuration, t } from './i18n.js';

const TICK_MS = 1000;

export class QueuePlace {
  /** @param {HTMLElement} box the queue-position line */
  constructor(box) {
    this.box = box;
    this.place = /** @type {HTMLElement} */ (box.querySelector('[data-field="place"]'));
    this.waited = /** @type {HTMLElement} */ (box.querySelector('[data-field="waited"]'));
    this.since = 0;
    this.timer = 0;
  }

  /**
   * A queue.position event: the place (null for a marked call) and the seconds waited so far.
   * @param {{position: number | null, waited_secs: number}} event
   */
  show(event) {
    const position = event.position;
    this.box.dataset.position = position === null ? '' : String(position);
    this.place.textContent =
      position === null ? t('call.queue.waiting') : t('call.queue.position', { position });
    this.since = Date.now() - Math.max(0, event.waited_secs) * 1000;
    this.box.hidden = false;
    this.tick();
    window.clearInterval(this.timer);
    this.timer = window.setInterval(() => this.tick(), TICK_MS);
  }

  tick() {
    const secs = (Date.now() - this.since) / 1000;
    this.box.dataset.waitedSecs = String(Math.floor(secs));
    this.waited.textContent = t('call.queue.waited', { time: formatDuration(secs) });
  }

  hide() {
    window.clearInterval(this.timer);
    this.box.hidden = true;
    this.box.dataset.position = '';
  }
}
