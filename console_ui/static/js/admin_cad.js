// /admin's list of CAD webhook deliveries that failed every try (docs/cad.md), each with a
// "Retry now" button: one more try at once, audited by the server. A delivered one leaves the
// list; one that fails again comes back at the next look.
import { loadCatalog, t } from './i18n.js';

const section = /** @type {HTMLElement} */ (document.querySelector('[data-testid="cad-dead-letters"]'));
const table = /** @type {HTMLElement} */ (section.querySelector('[data-testid="cad-dead-letter-table"]'));
const list = /** @type {HTMLElement} */ (section.querySelector('[data-testid="cad-dead-letter-list"]'));
const empty = /** @type {HTMLElement} */ (section.querySelector('[data-testid="cad-dead-letters-empty"]'));
const failure = /** @type {HTMLElement} */ (section.querySelector('[data-testid="cad-retry-error"]'));

// Texts of the events a delivery is posted on, written out so the catalogue test finds them.
const EVENT_TEXT = {
  answered: () => t('admin.cad.event_answered'),
  ended: () => t('admin.cad.event_ended'),
};

function csrfToken() {
  const field = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name="csrf_token"]'));
  return field ? field.value : '';
}

/**
 * @param {string} iso
 */
function when(iso) {
  return iso ? new Date(iso).toLocaleString(document.documentElement.lang || undefined) : '';
}

/**
 * One dead delivery as a row.
 * @param {{id: number, call_id: string, event: string, attempts: number, last_error: string, dead_at: string | null}} delivery
 */
function row(delivery) {
  const tr = document.createElement('tr');
  tr.dataset.testid = 'cad-dead-letter';
  tr.dataset.deliveryId = String(delivery.id);
  tr.dataset.callId = delivery.call_id;
  tr.dataset.event = delivery.event;
  const cells = [
    delivery.call_id,
    (EVENT_TEXT[/** @type {'answered' | 'ended'} */ (delivery.event)] || (() => delivery.event))(),
    String(delivery.attempts),
    delivery.last_error,
    when(delivery.dead_at || ''),
  ];
  for (const text of cells) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  const action = document.createElement('td');
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'btn';
  button.dataset.testid = 'cad-retry-now';
  button.textContent = t('admin.cad.retry_now');
  button.addEventListener('click', () => retry(delivery.id, button));
  action.append(button);
  tr.append(action);
  return tr;
}

async function refresh() {
  const response = await fetch('/api/admin/cad/deliveries', {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  });
  if (!response.ok) {
    return;
  }
  const { deliveries } = await response.json();
  list.replaceChildren(...deliveries.map(row));
  table.hidden = deliveries.length === 0;
  empty.hidden = deliveries.length > 0;
}

/**
 * @param {number} id
 * @param {HTMLButtonElement} button
 */
async function retry(id, button) {
  button.disabled = true;
  failure.hidden = true;
  const response = await fetch(`/api/admin/cad/deliveries/${id}/retry`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'X-CSRF-Token': csrfToken() },
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    failure.dataset.code = body.error?.code || '';
    failure.textContent = t('admin.cad.retry_failed');
    failure.hidden = false;
  }
  await refresh();
}

await loadCatalog();
await refresh();
section.dataset.ready = 'true';
