// The caller's receipt at the end of a call (docs/receipt.md): fetched with the call's token
// once the record is sealed, shown under the ended state, saved as a small text file or copied,
// with a link to the public check page that carries the values after '#', never in a request.
import { t } from './i18n.js';

/** The seal is made a moment after the end (the last recording segment is stored first). */
const RETRY_MS = 1000;
const GIVE_UP_MS = 30_000;

/**
 * @typedef {{call_id: string, started_at: string, answered_at: string | null,
 *   ended_at: string | null, sealed_at: string, seal: string}} Receipt
 */

/**
 * The check page's address for a receipt: the values after '#', which browsers never send.
 * @param {string} callId
 * @param {string} seal
 */
export function checkLink(callId, seal) {
  const values = new URLSearchParams({ call: callId, seal });
  return `${window.location.origin}/receipt#${values}`;
}

/** @param {string | null} iso */
function when(iso) {
  if (!iso) {
    return t('receipt.no_time');
  }
  // Digits only: every language's phone shows them (a browser without a language's month
  // names falls back to forms like "M12").
  const format = new Intl.DateTimeFormat(document.documentElement.lang || 'en', {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
  return format.format(new Date(iso));
}

/**
 * The receipt as the text file the caller keeps: labels in the page's language, times as
 * shown and in UTC (ISO 8601), the seal, and the check page's link.
 * @param {Receipt} receipt
 */
export function receiptText(receipt) {
  return `${[
    t('receipt.file_title'),
    '',
    `${t('receipt.call_id')}: ${receipt.call_id}`,
    `${t('receipt.started')}: ${when(receipt.started_at)} (${receipt.started_at})`,
    `${t('receipt.ended')}: ${when(receipt.ended_at)} (${receipt.ended_at || ''})`,
    `${t('receipt.seal')}: ${receipt.seal}`,
    '',
    t('receipt.file_check'),
    checkLink(receipt.call_id, receipt.seal),
  ].join('\n')}\n`;
}

/**
 * @param {HTMLElement} card
 * @param {string} state pending | shown | unavailable
 * @param {string} status
 */
function setState(card, state, status) {
  card.dataset.state = state;
  const line = /** @type {HTMLElement} */ (card.querySelector('[data-testid=receipt-status]'));
  line.textContent = status;
  line.hidden = !status;
}

/**
 * @param {HTMLElement} card
 * @param {Receipt} receipt
 */
function fill(card, receipt) {
  const field = (/** @type {string} */ name) =>
    /** @type {HTMLElement} */ (card.querySelector(`[data-field="${name}"]`));
  card.dataset.callId = receipt.call_id;
  card.dataset.seal = receipt.seal;
  field('call_id').textContent = receipt.call_id;
  field('started').textContent = when(receipt.started_at);
  field('started').setAttribute('datetime', receipt.started_at);
  field('ended').textContent = when(receipt.ended_at);
  field('ended').setAttribute('datetime', receipt.ended_at || '');
  field('seal').textContent = receipt.seal;
  const check = /** @type {HTMLAnchorElement} */ (card.querySelector('[data-testid=receipt-open-check]'));
  check.href = checkLink(receipt.call_id, receipt.seal);
  const text = receiptText(receipt);
  const save = /** @type {HTMLButtonElement} */ (card.querySelector('[data-testid=receipt-save]'));
  save.onclick = () => {
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = `lifeline-receipt-${receipt.call_id}.txt`;
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };
  const copy = /** @type {HTMLButtonElement} */ (card.querySelector('[data-testid=receipt-copy]'));
  copy.onclick = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState(card, 'shown', t('receipt.copied'));
    } catch {
      // No clipboard here: select the seal, so a long press copies it.
      window.getSelection()?.selectAllChildren(field('seal'));
      setState(card, 'shown', t('receipt.copy_by_hand'));
    }
  };
  for (const part of card.querySelectorAll('.receipt-body')) {
    /** @type {HTMLElement} */ (part).hidden = false;
  }
  setState(card, 'shown', '');
}

/**
 * The call's panel from its top (the "Call ended" state, the receipt below it) into view.
 * @param {HTMLElement} card
 */
function bringIntoView(card) {
  (card.parentElement || card).scrollIntoView({ block: 'start' });
}

/**
 * Shows the call's receipt in `card`: "sealing…" until the seal is made, then the receipt.
 * @param {HTMLElement} card the `call-receipt` section
 * @param {string} callId
 * @param {string} token the call's capability token
 */
export async function showReceipt(card, callId, token) {
  card.hidden = false;
  setState(card, 'pending', t('receipt.pending'));
  bringIntoView(card);
  const deadline = Date.now() + GIVE_UP_MS;
  for (;;) {
    let response = null;
    try {
      response = await fetch(`/api/calls/${encodeURIComponent(callId)}/receipt`, {
        headers: { 'X-Call-Token': token, Accept: 'application/json' },
        cache: 'no-store',
      });
    } catch (error) {
      console.warn('receipt: not fetched', error);
    }
    if (response && response.ok) {
      fill(card, await response.json());
      bringIntoView(card);
      return;
    }
    if (response && response.status === 401) {
      card.hidden = true; // not this page's call any more: no receipt to show
      return;
    }
    if ((response && response.status !== 409) || Date.now() > deadline) {
      setState(card, 'unavailable', t('receipt.unavailable'));
      return;
    }
    await new Promise((resolve) => window.setTimeout(resolve, RETRY_MS));
  }
}
