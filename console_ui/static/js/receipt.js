// The public check of a receipt (/receipt, docs/receipt.md): the call id and the seal go to
// POST /api/receipts/check, which says only whether they match a sealed record. A receipt's
// link (/receipt#call=...&seal=...) fills the fields and checks at once; what follows '#' is
// never sent in a request.
import { loadCatalog, t } from './i18n.js';

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const CALL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SEAL = /^[0-9a-f]{64}$/;

const page = {
  form: /** @type {HTMLFormElement} */ (document.getElementById('receipt-form')),
  callId: /** @type {HTMLInputElement} */ ($('receipt-call-id')),
  seal: /** @type {HTMLTextAreaElement} */ ($('receipt-seal')),
  check: /** @type {HTMLButtonElement} */ ($('receipt-check')),
  result: /** @type {HTMLElement} */ ($('receipt-result')),
};

/** What a person types or pastes: spaces and line breaks dropped, hex in lower case. */
const tidy = (/** @type {string} */ value) => value.replace(/\s+/g, '').toLowerCase();

/**
 * @param {'true' | 'false' | ''} valid '' when there is no verdict (not checked, refused)
 * @param {string} text
 */
function show(valid, text) {
  page.result.dataset.valid = valid;
  page.result.textContent = text;
  page.result.hidden = false;
}

async function check() {
  const callId = tidy(page.callId.value);
  const seal = tidy(page.seal.value);
  page.callId.value = callId;
  page.seal.value = seal;
  if (!CALL_ID.test(callId) || !SEAL.test(seal)) {
    show('false', t('receipt.bad_input'));
    return;
  }
  page.check.disabled = true;
  page.result.dataset.valid = '';
  try {
    const response = await fetch('/api/receipts/check', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ call_id: callId, seal }),
    });
    if (response.status === 429) {
      show('', t('receipt.rate_limited'));
    } else if (!response.ok) {
      show('', t('receipt.check_failed'));
    } else {
      const { valid } = await response.json();
      show(valid ? 'true' : 'false', valid ? t('receipt.valid') : t('receipt.invalid'));
    }
  } catch (error) {
    console.warn('receipt: check failed', error);
    show('', t('receipt.check_failed'));
  } finally {
    page.check.disabled = false;
  }
}

/** `#call=...&seal=...`: fill the fields in; true when both came. */
function fromLink() {
  const values = new URLSearchParams(window.location.hash.slice(1));
  const callId = values.get('call') || '';
  const seal = values.get('seal') || '';
  page.callId.value = callId;
  page.seal.value = seal;
  return Boolean(callId && seal);
}

async function main() {
  page.form.addEventListener('submit', (event) => {
    event.preventDefault();
    check();
  });
  for (const input of [page.callId, page.seal]) {
    input.addEventListener('input', () => {
      page.result.hidden = true; // a verdict is about the values it was given
      page.result.dataset.valid = '';
    });
  }
  await loadCatalog(document.documentElement.lang);
  const linked = fromLink();
  document.body.dataset.ready = 'true';
  if (linked) {
    check();
  }
}

main();
