// "NOT RECORDING": a call whose media node's recording disk is low goes on unrecorded, and
// every screen that shows it says so, loudly. The state is the call's (its summary's
// recording_paused_at, as its media node last reported), so a page opened later shows it too.
import { t } from './i18n.js';

/**
 * True while nothing of the call is recorded.
 * @param {any} summary a CallSummary
 */
export function notRecording(summary) {
  return Boolean(summary && summary.recording_paused_at);
}

/**
 * Shows or hides a "NOT RECORDING" badge for the call.
 * @param {HTMLElement} badge
 * @param {any} summary
 */
export function showNotRecording(badge, summary) {
  const paused = notRecording(summary);
  badge.hidden = !paused;
  badge.textContent = paused ? t('recording.not_recording') : '';
  badge.title = paused ? t('recording.disk_low') : '';
}
