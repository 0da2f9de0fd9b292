// Invites (docs/invites.md): the caller is on the phone line; the operator types their number
// and Lifeline texts them a single-use link into a video call with this operator, or the
// operator copies a link to pass on. A gateway that fails is a visible state, the link kept.
import { t } from './i18n.js';

const ui = {
  form: document.getElementById('invite-form'),
  phone: document.querySelector('[data-testid="invite-phone"]'),
  language: document.querySelector('[data-testid="invite-language"]'),
  send: document.querySelector('[data-testid="invite-send"]'),
  copy: document.querySelector('[data-testid="invite-copy"]'),
  status: document.querySelector('[data-testid="invite-status"]'),
  link: document.querySelector('[data-testid="invite-link"]'),
};

// Texts of each state and refusal, written out so the catalogue test can find every key.
const STATUS_TEXT = {
  sending: () => t('invite.status.sending'),
  sent: (v) => t('invite.status.sent', v),
  copied: () => t('invite.status.copied'),
  link: () => t('invite.status.link'),
  failed: (v) => t('invite.status.failed', v),
  invalid_phone: () => t('invite.status.invalid_phone'),
  rate_limited: () => t('invite.status.rate_limited'),
  refused: (v) => t('invite.status.refused', v),
};

function csrfToken() {
  const input = document.querySelector('input[name="csrf_token"]');
  return input ? input.value : '';
}

/**
 * @param {keyof STATUS_TEXT} state
 * @param {Record<string, string>} [values]
 */
function setStatus(state, values) {
  ui.status.dataset.state = state;
  ui.status.textContent = STATUS_TEXT[state](values || {});
}

/** @param {string} link */
function showLink(link) {
  ui.link.value = link;
  ui.link.hidden = !link;
}

/** @param {string} link */
async function copyToClipboard(link) {
  try {
    await navigator.clipboard.writeText(link);
    return true;
  } catch {
    ui.link.select(); // the operator copies it by hand
    return false;
  }
}

/** @param {boolean} bySms */
async function invite(bySms) {
  const phone = ui.phone.value.trim();
  if (bySms && !phone) {
    setStatus('invalid_phone');
    ui.phone.focus();
    return;
  }
  ui.send.disabled = true;
  ui.copy.disabled = true;
  showLink('');
  if (bySms) {
    setStatus('sending');
  }
  let reply;
  try {
    const response = await fetch('/api/invites', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': csrfToken() },
      body: JSON.stringify({ ...(bySms ? { phone } : {}), language: ui.language.value }),
    });
    reply = await response.json().catch(() => ({}));
    if (!response.ok) {
      const code = (reply.error && reply.error.code) || '';
      setStatus(code === 'invalid_phone' || code === 'rate_limited' ? code : 'refused', {
        reason: (reply.error && reply.error.message) || String(response.status),
      });
      return;
    }
  } catch (error) {
    console.warn('console: invite', error);
    setStatus('refused', { reason: t('console.error.timeout') });
    return;
  } finally {
    ui.send.disabled = false;
    ui.copy.disabled = false;
  }
  showLink(reply.link);
  if (!bySms) {
    setStatus((await copyToClipboard(reply.link)) ? 'copied' : 'link');
  } else if (reply.sms === 'sent') {
    setStatus('sent', { phone: reply.phone });
    ui.phone.value = '';
  } else {
    // Nothing lost: the link works; the operator may read it out or try again.
    setStatus('failed', { phone: reply.phone });
  }
}

/** Wires the invite form. */
export function bindInvite() {
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    invite(true);
  });
  ui.copy.addEventListener('click', () => invite(false));
  ui.link.addEventListener('focus', () => ui.link.select());
}
