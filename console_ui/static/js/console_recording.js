// The open call's "NOT RECORDING" banner: shown from the call's summary when it opens (its join
// or accept) and from every update of it, hidden when recording resumes or the call closes.
import { live } from './console_page.js';
import { notRecording } from './recording_state.js';

const banner = /** @type {HTMLElement} */ (document.querySelector('[data-testid="not-recording"]'));

/**
 * A summary of some call: the banner follows it when it is the open call's.
 * @param {any} summary
 */
export function showCallRecording(summary) {
  if (!live.active || !summary || summary.call_id !== live.active.callId) {
    return;
  }
  banner.hidden = !notRecording(summary);
  banner.dataset.since = summary.recording_paused_at || '';
}

/** The call closed here: nothing to say about its recording any more. */
export function hideCallRecording() {
  banner.hidden = true;
  banner.dataset.since = '';
}
