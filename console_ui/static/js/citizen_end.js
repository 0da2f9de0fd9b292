// The phone's End button: a tap asks, a second tap (within a few seconds) ends. A pocket or a
// shaking hand must not hang up on the operator; the hint says what the second tap does.
import { t } from './i18n.js';

/** How long the first tap's question stays open. */
const CONFIRM_MS = 4000;

/**
 * @param {HTMLButtonElement} button the end-call button
 * @param {HTMLElement} hint the line that says "tap End again"
 * @param {() => void} onEnd called on the confirming tap
 */
export function bindEndButton(button, hint, onEnd) {
  let timer = 0;
  const label = button.querySelector('[data-label="end"]');
  const reset = () => {
    window.clearTimeout(timer);
    button.dataset.confirm = 'false';
    hint.hidden = true;
    if (label) {
      label.textContent = t('call.end_short');
    }
    button.setAttribute('aria-label', t('call.end'));
  };
  button.addEventListener('click', () => {
    if (button.dataset.confirm !== 'true') {
      button.dataset.confirm = 'true';
      hint.hidden = false;
      if (label) {
        label.textContent = t('call.end_again_short');
      }
      button.setAttribute('aria-label', t('call.end_confirm'));
      timer = window.setTimeout(reset, CONFIRM_MS);
      return;
    }
    reset();
    onEnd();
  });
}
