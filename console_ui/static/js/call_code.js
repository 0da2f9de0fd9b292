// The caller's three-word code (docs/invites.md): shown once the call is answered, the same
// words as on the operator's console, with plain words on what they are for. The server sends
// them with the answered state (the call.state event, and the resume after a reconnect), with
// the answering operator's display name and badge number as set on /admin.
import { t } from './i18n.js';

/**
 * Shows the words of an answered call, or hides the box (waiting, ended).
 * @param {HTMLElement} box the `verification-box` section
 * @param {{state?: string, verification_code?: string[], operator_name?: string | null,
 *   operator_badge?: string | null}} state the server's call state
 */
export function showCode(box, state) {
  const answered = Boolean(state && state.state === 'answered');
  const words = answered ? state.verification_code || [] : [];
  const code = words.join(' ');
  box.querySelector('[data-testid="verification-code"]').textContent = code;
  const who = box.querySelector('[data-testid="operator-identity"]');
  const name = answered ? state.operator_name || '' : '';
  const badge = answered ? state.operator_badge || '' : '';
  who.textContent = !name
    ? ''
    : badge
      ? t('code.operator_with_badge', { name, badge })
      : t('code.operator_named', { name });
  who.hidden = !name;
  box.hidden = !code;
}
