// The call archive (/archive): the search form, an area drawn on the map, the results a page at
// a time. The search is kept in the address, so coming back from a record shows the same page.
// `/` focuses the words field from anywhere on the page.
import { AreaDrawer } from './archive_area.js';
import { CallerMap } from './basemap.js';
import { loadCatalog, t } from './i18n.js';
import { ApiError, fetchJson, formatDateTime } from './threats_common.js';

const $ = (testid) => /** @type {HTMLElement} */ (document.querySelector(`[data-testid="${testid}"]`));
const FIELDS = ['q', 'from', 'to', 'operator', 'channel', 'disposition'];

const ui = {
  form: /** @type {HTMLFormElement} */ (document.getElementById('archive-form')),
  query: /** @type {HTMLInputElement} */ ($('archive-query')),
  error: $('archive-error'),
  count: $('archive-count'),
  results: $('archive-results'),
  pager: $('archive-pager'),
  prev: /** @type {HTMLButtonElement} */ ($('archive-prev')),
  next: /** @type {HTMLButtonElement} */ ($('archive-next')),
  pageState: $('archive-page'),
};
const lang = document.documentElement.lang || 'en';
let page = 1;
/** @type {AreaDrawer} */
let area;

/** @param {string} name */
function input(name) {
  return /** @type {HTMLInputElement | HTMLSelectElement | null} */ (ui.form.elements.namedItem(name));
}

/** The datetime-local value (the browser's time zone) as an ISO time the server takes. */
function isoOf(local) {
  const when = new Date(local);
  return Number.isNaN(when.getTime()) ? '' : when.toISOString();
}

/** The ISO time back as a datetime-local value. */
function localOf(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) {
    return '';
  }
  const shifted = new Date(when.getTime() - when.getTimezoneOffset() * 60_000);
  return shifted.toISOString().slice(0, 16);
}

function params() {
  const out = new URLSearchParams();
  for (const name of FIELDS) {
    const field = input(name);
    if (!field || !field.value.trim()) {
      continue;
    }
    const value = name === 'from' || name === 'to' ? isoOf(field.value) : field.value.trim();
    if (value) {
      out.set(name, value);
    }
  }
  const drawn = area.value();
  if (drawn) {
    out.set('area', drawn);
  }
  if (page > 1) {
    out.set('page', String(page));
  }
  return out;
}

/** @param {any} result */
function resultItem(result) {
  const item = document.createElement('li');
  const link = document.createElement('a');
  link.className = 'result';
  link.href = `/archive/calls/${encodeURIComponent(result.call_id)}`;
  link.dataset.testid = 'archive-result';
  link.dataset.callId = result.call_id;
  link.dataset.channel = result.channel;
  const when = document.createElement('time');
  when.className = 'result-when';
  when.dateTime = result.created_at;
  when.textContent = formatDateTime(result.created_at, lang);
  const channel = document.createElement('span');
  channel.className = 'badge';
  channel.dataset.channel = result.channel;
  channel.textContent = t(`channel.${result.channel}`);
  const state = document.createElement('span');
  state.className = 'badge badge-muted';
  state.textContent = t(`archive.state.${result.state}`);
  const head = document.createElement('span');
  head.className = 'result-head';
  head.append(when, channel, state);
  const facts = document.createElement('span');
  facts.className = 'result-facts';
  const bits = [
    result.operator ? t('archive.result_operator', { name: result.operator }) : t('archive.unanswered'),
    result.disposition ? t(`disposition.${result.disposition}`) : t('archive.no_disposition'),
    t('archive.result_segments', { count: result.segments }),
  ];
  for (const mark of result.marks) {
    bits.push(t(`call.mark.${mark}`));
  }
  facts.textContent = bits.join(' · ');
  const id = document.createElement('span');
  id.className = 'result-id';
  id.textContent = result.call_id;
  link.append(head, facts, id);
  item.append(link);
  return item;
}

/** @param {boolean} keepPage */
async function search(keepPage) {
  if (!keepPage) {
    page = 1;
  }
  const query = params();
  history.replaceState(null, '', query.toString() ? `/archive?${query}` : '/archive');
  ui.error.hidden = true;
  ui.count.textContent = t('archive.searching');
  ui.form.setAttribute('aria-busy', 'true');
  try {
    const body = await fetchJson(`/api/archive/calls?${query}`);
    ui.results.replaceChildren(...body.results.map(resultItem));
    ui.count.dataset.total = String(body.total);
    ui.count.textContent = body.total
      ? t('archive.count', { count: body.total })
      : t('archive.none_found');
    const pages = Math.max(1, Math.ceil(body.total / body.per_page));
    ui.pager.hidden = pages <= 1;
    ui.pageState.textContent = t('archive.page_of', { page: body.page, pages });
    ui.prev.disabled = body.page <= 1;
    ui.next.disabled = body.page >= pages;
  } catch (error) {
    ui.results.replaceChildren();
    ui.count.textContent = '';
    ui.count.dataset.total = '';
    ui.error.hidden = false;
    const code = error instanceof ApiError ? error.code : 'network';
    ui.error.dataset.code = code;
    ui.error.textContent = t(`archive.error.${ARCHIVE_ERRORS.has(code) ? code : 'other'}`);
  } finally {
    ui.form.removeAttribute('aria-busy');
  }
}

const ARCHIVE_ERRORS = new Set([
  'invalid_date',
  'invalid_area',
  'invalid_words',
  'invalid_username',
  'invalid_page',
  'session_expired',
  'unauthorized',
]);

/** The search in the address (after coming back from a record) put back into the form. */
function restore() {
  const query = new URLSearchParams(location.search);
  for (const name of FIELDS) {
    const field = input(name);
    const value = query.get(name);
    if (field && value) {
      field.value = name === 'from' || name === 'to' ? localOf(value) : value;
    }
  }
  page = Math.max(1, Number(query.get('page')) || 1);
  return FIELDS.some((name) => query.get(name)) || query.has('page');
}

function isTyping(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))
  );
}

async function main() {
  await loadCatalog(lang);
  const map = new CallerMap(/** @type {HTMLElement} */ ($('archive-map')));
  map.map.setView([52, 19], 5);
  area = new AreaDrawer(
    map.map,
    {
      draw: /** @type {HTMLButtonElement} */ ($('area-draw')),
      finish: /** @type {HTMLButtonElement} */ ($('area-finish')),
      clear: /** @type {HTMLButtonElement} */ ($('area-clear')),
      state: $('area-state'),
    },
    () => {},
  );
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    search(false);
  });
  ui.form.addEventListener('reset', () => {
    area.clear();
    page = 1;
  });
  ui.prev.addEventListener('click', () => {
    page = Math.max(1, page - 1);
    search(true);
  });
  ui.next.addEventListener('click', () => {
    page += 1;
    search(true);
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === '/' && !event.ctrlKey && !event.metaKey && !isTyping(event.target)) {
      event.preventDefault();
      ui.query.focus();
      ui.query.select();
    }
  });
  if (restore()) {
    await search(true);
  }
  document.body.dataset.ready = 'true';
}

main();
