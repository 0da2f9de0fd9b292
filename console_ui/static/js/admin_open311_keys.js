// /admin: Open311 partners' API keys (_admin_open311_keys.html). Lists the keys from
// GET /api/admin/open311-keys, issues one (POST: the answer carries the secret, shown here this
// once and in no list) and revokes one with a reason (DELETE). Sets data-ready on its section
// once the list is shown.
import { loadCatalog, t } from './i18n.js';

const API = '/api/admin/open311-keys';
const lang = document.documentElement.lang || 'en';
const section = /** @type {HTMLElement} */ (document.querySelector('[data-testid="open311-keys"]'));
/** @param {string} testid */
const $ = (testid) => /** @type {HTMLElement} */ (section.querySelector(`[data-testid="${testid}"]`));

const ui = {
  form: /** @type {HTMLFormElement} */ ($('open311-key-form')),
  partner: /** @type {HTMLInputElement} */ ($('open311-key-partner')),
  limit: /** @type {HTMLInputElement} */ ($('open311-key-limit')),
  reason: /** @type {HTMLInputElement} */ ($('open311-key-reason')),
  issue: /** @type {HTMLButtonElement} */ ($('open311-key-issue')),
  error: $('open311-key-error'),
  secretBox: $('open311-key-secret-box'),
  secretTitle: $('open311-key-secret-title'),
  secret: $('open311-key-secret'),
  secretDone: $('open311-key-secret-done'),
  table: $('open311-keys-table'),
  empty: $('open311-keys-empty'),
};

// Refusals said in the reader's language; any other code is "other".
const ERRORS = {
  reason_required: () => t('admin.open311.error.reason_required'),
  reason_too_long: () => t('admin.open311.error.reason_too_long'),
  invalid_partner: () => t('admin.open311.error.invalid_partner'),
  invalid_daily_limit: () => t('admin.open311.error.invalid_daily_limit'),
  api_key_revoked: () => t('admin.open311.error.api_key_revoked'),
  other: () => t('admin.open311.error.other'),
};

class ApiError extends Error {
  /** @param {string} code */
  constructor(code) {
    super(code);
    this.code = code;
  }
}

function csrfToken() {
  const field = /** @type {HTMLInputElement | null} */ (ui.form.querySelector('input[name="csrf_token"]'));
  return field ? field.value : '';
}

/**
 * @param {string} url
 * @param {RequestInit} [init]
 */
async function call(url, init = {}) {
  let response;
  try {
    response = await fetch(url, {
      credentials: 'same-origin',
      ...init,
      headers: {
        Accept: 'application/json',
        'Content-Type': 'application/json',
        'X-CSRF-Token': csrfToken(),
        ...(init.headers || {}),
      },
    });
  } catch {
    throw new ApiError('network');
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(body?.error?.code || 'other');
  }
  return body;
}

/** @param {string | null} iso */
function when(iso) {
  if (!iso) {
    return t('admin.open311.never');
  }
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime())
    ? iso
    : new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(moment);
}

/** @param {string} code */
function showError(code) {
  ui.error.hidden = false;
  ui.error.dataset.code = code;
  ui.error.textContent = (Object.hasOwn(ERRORS, code) ? ERRORS[code] : ERRORS.other)();
}

function clearError() {
  ui.error.hidden = true;
  ui.error.dataset.code = '';
  ui.error.textContent = '';
}

/**
 * @param {string} text
 * @param {string} [className]
 */
function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) {
    td.className = className;
  }
  return td;
}

/** @param {any} key */
function revokeForm(key) {
  const form = document.createElement('form');
  form.className = 'form-row revoke-form';
  form.noValidate = true;
  const label = document.createElement('label');
  label.className = 'visually-hidden';
  label.htmlFor = `open311-revoke-${key.id}`;
  label.textContent = t('admin.open311.revoke_reason_for', { partner: key.partner });
  const reason = document.createElement('input');
  reason.id = `open311-revoke-${key.id}`;
  reason.type = 'text';
  reason.maxLength = 500;
  reason.autocomplete = 'off';
  reason.placeholder = t('admin.open311.revoke_reason');
  reason.dataset.testid = 'open311-key-revoke-reason';
  const button = document.createElement('button');
  button.type = 'submit';
  button.className = 'btn btn-danger';
  button.dataset.testid = 'open311-key-revoke';
  button.textContent = t('admin.open311.revoke');
  form.append(label, reason, button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError();
    const why = reason.value.trim();
    if (!why) {
      showError('reason_required');
      reason.focus();
      return;
    }
    button.disabled = true;
    try {
      await call(`${API}/${encodeURIComponent(key.id)}`, {
        method: 'DELETE',
        body: JSON.stringify({ reason: why }),
      });
      await refresh();
    } catch (error) {
      showError(error instanceof ApiError ? error.code : 'other');
      button.disabled = false;
    }
  });
  return form;
}

/** @param {any} key */
function row(key) {
  const tr = document.createElement('tr');
  tr.dataset.testid = 'open311-key-row';
  tr.dataset.keyId = String(key.id);
  tr.dataset.partner = key.partner;
  tr.dataset.state = key.revoked ? 'revoked' : 'active';
  if (key.revoked) {
    tr.className = 'is-revoked';
  }
  const name = document.createElement('th');
  name.scope = 'row';
  name.textContent = key.partner;
  const state = document.createElement('td');
  const badge = document.createElement('span');
  badge.className = `badge ${key.revoked ? 'badge-danger' : 'badge-ok'}`;
  badge.dataset.testid = 'open311-key-state';
  badge.textContent = key.revoked ? t('admin.open311.revoked') : t('admin.open311.active');
  state.append(badge);
  const today = cell(String(key.reports_today), 'num');
  today.dataset.testid = 'open311-key-today';
  const lastUsed = cell(when(key.last_used_at), 'when');
  lastUsed.dataset.testid = 'open311-key-last-used';
  const action = document.createElement('td');
  if (key.revoked) {
    const note = document.createElement('span');
    note.className = 'revoked-note';
    note.dataset.testid = 'open311-key-revoked-note';
    note.textContent = t('admin.open311.revoked_note', {
      when: when(key.revoked_at),
      who: key.revoked_by,
      reason: key.revoke_reason,
    });
    action.append(note);
  } else {
    action.append(revokeForm(key));
  }
  tr.append(
    name,
    state,
    cell(String(key.daily_limit), 'num'),
    today,
    cell(key.created_by, 'who'),
    cell(when(key.created_at), 'when'),
    lastUsed,
    action,
  );
  return tr;
}

/** @param {any[]} keys */
function render(keys) {
  ui.table.querySelector('tbody')?.replaceChildren(...keys.map(row));
  ui.table.hidden = keys.length === 0;
  ui.empty.hidden = keys.length > 0;
}

async function refresh() {
  section.dataset.ready = 'false';
  try {
    const body = await call(API, { method: 'GET' });
    render(body.keys);
  } catch (error) {
    showError(error instanceof ApiError ? error.code : 'other');
  }
  section.dataset.ready = 'true';
}

/** @param {SubmitEvent} event */
async function issue(event) {
  event.preventDefault();
  clearError();
  const partner = ui.partner.value.trim();
  const reason = ui.reason.value.trim();
  const limit = Number(ui.limit.value);
  if (!partner) {
    showError('invalid_partner');
    ui.partner.focus();
    return;
  }
  if (!Number.isInteger(limit) || limit < 1) {
    showError('invalid_daily_limit');
    ui.limit.focus();
    return;
  }
  if (!reason) {
    showError('reason_required');
    ui.reason.focus();
    return;
  }
  ui.issue.disabled = true;
  try {
    const body = await call(API, {
      method: 'POST',
      body: JSON.stringify({ partner, daily_limit: limit, reason }),
    });
    ui.secretTitle.textContent = t('admin.open311.secret_title', { partner: body.key.partner });
    ui.secret.textContent = body.api_key;
    ui.secretBox.hidden = false;
    ui.form.reset();
    await refresh();
    ui.secretBox.focus();
  } catch (error) {
    showError(error instanceof ApiError ? error.code : 'other');
  } finally {
    ui.issue.disabled = false;
  }
}

/** Forget the secret: it is not in the page any more, nor anywhere else. */
function hideSecret() {
  ui.secret.textContent = '';
  ui.secretTitle.textContent = '';
  ui.secretBox.hidden = true;
}

async function main() {
  await loadCatalog(lang);
  ui.secretBox.tabIndex = -1;
  ui.form.addEventListener('submit', issue);
  ui.secretDone.addEventListener('click', hideSecret);
  await refresh();
}

main();
