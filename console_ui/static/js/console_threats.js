// The console's Threats tab: reports from the public map in a list and on a small map, filtered by
// status, category, age and the map's view; new and changed ones arrive live over the console's
// Socket.IO (`report.new`, `report.updated`). A detail panel moves a report through KMZB's
// statuses with a public and an internal note, and forwards it to another body.
import { CallerMap } from './basemap.js';
import { t } from './i18n.js';
import {
  ApiError,
  L,
  NEXT_STATUSES,
  categoryLabel,
  clusterIcon,
  fetchJson,
  fillCategorySelect,
  formatDateTime,
  loadCategories,
  loadMarkerCluster,
  statusIcon,
  statusLabel,
  timeAgo,
} from './threats_common.js';

const DAY_MS = 86_400_000;
const FRESH_MARK_MS = 6000;
/** The list re-renders its ages this often; overdue flags come from the server on each load. */
const AGE_TICK_MS = 60_000;

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

// Names written out so the catalogue test sees every key.
const FORWARD_TEXT = {
  road_authority: () => t('threats.to.road_authority'),
  city_guard: () => t('threats.to.city_guard'),
  other: () => t('threats.to.other'),
};
const TIME_TEXT = {
  any: () => t('map.time.any'),
  morning: () => t('map.time.morning'),
  afternoon: () => t('map.time.afternoon'),
  evening: () => t('map.time.evening'),
  night: () => t('map.time.night'),
};
const DAY_TEXT = {
  mon: () => t('map.day.mon'),
  tue: () => t('map.day.tue'),
  wed: () => t('map.day.wed'),
  thu: () => t('map.day.thu'),
  fri: () => t('map.day.fri'),
  sat: () => t('map.day.sat'),
  sun: () => t('map.day.sun'),
};

const lang = document.documentElement.lang || 'en';

const ui = {
  panel: $('threats-panel'),
  filters: document.getElementById('threat-filters'),
  status: $('threat-filter-status'),
  category: $('threat-filter-category'),
  age: $('threat-filter-age'),
  area: $('threat-filter-area'),
  list: $('threat-list'),
  empty: $('threats-empty'),
  count: $('threats-count'),
  error: $('threats-error'),
  mapElement: document.getElementById('threat-map'),
  detailEmpty: $('threat-detail-empty'),
  detailBody: $('threat-detail-body'),
  detailStatus: $('threat-detail-status'),
  facts: $('threat-facts'),
  description: $('threat-description'),
  photos: $('threat-photos'),
  history: $('threat-history'),
  statusForm: document.getElementById('threat-status-form'),
  statusSelect: $('threat-status-select'),
  publicNote: $('threat-public-note'),
  internalNote: $('threat-internal-note'),
  statusSubmit: $('threat-status-submit'),
  final: $('threat-final'),
  forwardForm: document.getElementById('threat-forward-form'),
  forwardTo: $('threat-forward-to'),
  forwardNote: $('threat-forward-note'),
  invite: $('threat-invite'),
  invited: $('threat-invited'),
  actionStatus: $('threat-action-status'),
};

const threats = {
  /** @type {Map<string, any>} reports by id (as a string) */
  reports: new Map(),
  /** @type {Map<string, any>} markers by report id */
  markers: new Map(),
  /** @type {any} */ map: null,
  /** @type {any} */ layer: null,
  /** The basemap has streets (basemap.js): fitting goes as deep as a street. */
  streets: false,
  selectedId: '',
  fitted: false,
  loading: 0,
};

function csrfToken() {
  const input = document.querySelector('input[name="csrf_token"]');
  return input ? input.value : '';
}

/**
 * @param {string} url
 * @param {object} payload
 */
function postJson(url, payload) {
  return fetchJson(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
    body: JSON.stringify(payload),
  });
}

/** @param {string} text */
function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

// --- filters -------------------------------------------------------------------------------

/** @param {any} report */
function matchesFilters(report) {
  if (ui.status.value && report.status !== ui.status.value) {
    return false;
  }
  if (ui.category.value && report.category !== ui.category.value) {
    return false;
  }
  const days = Number(ui.age.value);
  if (days && Date.now() - Date.parse(report.created_at) > days * DAY_MS) {
    return false;
  }
  if (ui.area.checked && threats.map && Number.isFinite(report.lat)) {
    return threats.map.getBounds().contains([report.lat, report.lon]);
  }
  return true;
}

async function loadReports() {
  const query = new URLSearchParams();
  if (ui.status.value) query.set('status', ui.status.value);
  if (ui.category.value) query.set('category', ui.category.value);
  if (ui.age.value) query.set('max_age_days', ui.age.value);
  const ticket = ++threats.loading;
  let body;
  try {
    body = await fetchJson(`/api/staff/reports?${query}`);
  } catch (error) {
    console.warn('threats: list', error);
    showError(
      error instanceof ApiError && error.status === 403 ? t('threats.forbidden') : t('threats.load_failed'),
    );
    return;
  }
  if (ticket !== threats.loading) {
    return; // a newer filter's answer is on its way
  }
  showError('');
  threats.reports.clear();
  for (const report of body.reports || []) {
    threats.reports.set(String(report.id), report);
  }
  render();
  if (!threats.fitted && threats.map && threats.reports.size) {
    threats.fitted = true;
    fitToReports();
  }
}

function fitToReports() {
  const points = [...threats.reports.values()]
    .filter((report) => Number.isFinite(report.lat) && Number.isFinite(report.lon))
    .map((report) => [report.lat, report.lon]);
  if (points.length) {
    threats.map.fitBounds(L.latLngBounds(points), { maxZoom: threats.streets ? 16 : 10, padding: [24, 24] });
  }
}

// --- the list and the map ------------------------------------------------------------------

/** @param {any} report */
function overdueBadges(report) {
  const badges = [];
  if (report.overdue_read) {
    badges.push(['threat-overdue-read', t('threats.overdue_read')]);
  }
  if (report.overdue_verify) {
    badges.push(['threat-overdue-verify', t('threats.overdue_verify')]);
  }
  return badges.map(([testid, text]) => {
    const badge = document.createElement('span');
    badge.className = 'overdue-badge';
    badge.dataset.testid = testid;
    badge.textContent = text;
    return badge;
  });
}

/** @param {any} report */
function listItem(report) {
  const item = document.createElement('li');
  item.className = 'threat-item';
  item.dataset.testid = 'threat-item';
  item.dataset.reportId = String(report.id);
  item.dataset.status = report.status;
  item.setAttribute('role', 'option');
  item.setAttribute('aria-selected', String(String(report.id) === threats.selectedId));
  item.tabIndex = 0;
  const title = document.createElement('span');
  title.className = 'threat-title';
  title.textContent = `${categoryLabel(report.category)} · #${report.id}`;
  const badge = document.createElement('span');
  badge.className = 'status-badge';
  badge.dataset.status = report.status;
  badge.textContent = statusLabel(report.status);
  const age = document.createElement('span');
  age.className = 'threat-age';
  age.textContent = [
    timeAgo(report.created_at, lang),
    t('map.confirmations', { count: report.confirmations || 0 }),
  ]
    .filter(Boolean)
    .join(' · ');
  const badges = document.createElement('span');
  badges.className = 'threat-badges';
  badges.append(...overdueBadges(report));
  item.append(title, badge, age, badges);
  item.addEventListener('click', () => select(String(report.id)));
  item.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      select(String(report.id));
    }
  });
  return item;
}

function render() {
  const shown = [...threats.reports.values()]
    .filter(matchesFilters)
    .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  const fresh = new Set(
    [...ui.list.querySelectorAll('.threat-item.is-fresh')].map((item) => item.dataset.reportId),
  );
  ui.list.replaceChildren(
    ...shown.map((report) => {
      const item = listItem(report);
      item.classList.toggle('is-fresh', fresh.has(item.dataset.reportId));
      return item;
    }),
  );
  ui.empty.hidden = shown.length > 0;
  ui.count.textContent = `(${shown.length})`;
  renderMarkers(shown);
  if (threats.selectedId) {
    const report = threats.reports.get(threats.selectedId);
    if (report) {
      renderDetail(report, false);
    }
  }
}

/**
 * The marker's element carries its report (for the officer's CSS and for tests).
 * @param {any} marker
 * @param {string} id
 */
function markMarker(marker, id) {
  const element = marker.getElement();
  const report = threats.reports.get(id);
  if (element && report) {
    element.dataset.testid = 'threat-marker';
    element.dataset.reportId = id;
    element.dataset.status = report.status;
    element.querySelector('.threat-pin')?.classList.toggle('is-selected', id === threats.selectedId);
  }
}

/** @param {any[]} shown */
function renderMarkers(shown) {
  if (!threats.layer) {
    return;
  }
  const keep = new Set();
  for (const report of shown) {
    if (!Number.isFinite(report.lat) || !Number.isFinite(report.lon)) {
      continue;
    }
    const id = String(report.id);
    keep.add(id);
    let marker = threats.markers.get(id);
    if (!marker) {
      marker = L.marker([report.lat, report.lon], {
        icon: statusIcon(report.status),
        keyboard: false,
        status: report.status,
      });
      marker.on('click', () => select(id));
      // In a cluster group a marker's element comes and goes with the zoom.
      marker.on('add', () => markMarker(marker, id));
      marker.addTo(threats.layer);
      threats.markers.set(id, marker);
    } else {
      marker.setLatLng([report.lat, report.lon]);
      if (marker.options.status !== report.status) {
        marker.options.status = report.status;
        marker.setIcon(statusIcon(report.status));
        threats.layer.refreshClusters?.(marker);
      }
    }
    markMarker(marker, id);
    marker.setZIndexOffset(id === threats.selectedId ? 1000 : 0);
  }
  for (const [id, marker] of threats.markers) {
    if (!keep.has(id)) {
      threats.layer.removeLayer(marker);
      threats.markers.delete(id);
    }
  }
}

// --- the detail panel ----------------------------------------------------------------------

/**
 * @param {HTMLElement} list
 * @param {string} label
 * @param {string | Node} value
 */
function addFact(list, label, value) {
  if (value === '' || value === null || value === undefined) {
    return;
  }
  const term = document.createElement('dt');
  term.textContent = label;
  const detail = document.createElement('dd');
  detail.append(value);
  list.append(term, detail);
}

/** @param {any} report */
function whenText(report) {
  const days = Array.isArray(report.days)
    ? report.days
    : String(report.days || '')
        .split(',')
        .filter(Boolean);
  const dayText = days.map((day) => (DAY_TEXT[day] ? DAY_TEXT[day]() : day)).join(', ');
  const time = report.time_of_day && TIME_TEXT[report.time_of_day] ? TIME_TEXT[report.time_of_day]() : '';
  return [dayText, time].filter(Boolean).join(' · ');
}

/**
 * One row of a report's history: created, a status change, or a forward.
 * @param {any} entry
 */
function historyItem(entry) {
  const status = entry.to_status || entry.status || '';
  const item = document.createElement('li');
  item.dataset.status = status;
  item.dataset.testid = 'threat-history-item';
  const time = document.createElement('time');
  time.dateTime = entry.at;
  time.textContent = formatDateTime(entry.at, lang);
  const head = document.createElement('strong');
  const what =
    entry.kind === 'forward'
      ? t('threats.forwarded', {
          to: FORWARD_TEXT[entry.forwarded_to] ? FORWARD_TEXT[entry.forwarded_to]() : entry.forwarded_to,
        })
      : entry.kind === 'invite'
        ? t('threats.invited')
        : statusLabel(status);
  head.textContent = [what, entry.actor].filter(Boolean).join(' · ');
  item.append(time, head);
  if (entry.public_note) {
    const note = document.createElement('p');
    note.textContent = entry.public_note;
    item.append(note);
  }
  if (entry.internal_note) {
    const note = document.createElement('p');
    note.className = 'note-internal';
    note.textContent = `${t('threats.internal_note')}: ${entry.internal_note}`;
    item.append(note);
  }
  return item;
}

/**
 * @param {any} report
 * @param {boolean} resetForm the officer picked another report
 */
function renderDetail(report, resetForm) {
  ui.detailEmpty.hidden = true;
  ui.detailBody.hidden = false;
  ui.detailBody.dataset.reportId = String(report.id);
  ui.detailStatus.dataset.status = report.status;
  ui.detailStatus.textContent = statusLabel(report.status);

  const facts = document.createDocumentFragment();
  const list = document.createElement('div');
  addFact(list, t('threats.fact_category'), `${categoryLabel(report.category)} · #${report.id}`);
  addFact(list, t('threats.fact_created'), report.created_at ? formatDateTime(report.created_at, lang) : '');
  addFact(list, t('threats.fact_read'), report.read_at ? formatDateTime(report.read_at, lang) : t('threats.not_read'));
  addFact(list, t('threats.fact_when'), whenText(report));
  addFact(list, t('threats.fact_confirmations'), String(report.confirmations || 0));
  if (Number.isFinite(report.lat)) {
    addFact(list, t('threats.fact_point'), `${report.lat.toFixed(5)}, ${report.lon.toFixed(5)}`);
  }
  // Open311: the address a partner app named beside the point, and which partner sent it.
  addFact(list, t('threats.fact_address'), report.address);
  addFact(list, t('threats.fact_partner'), report.partner);
  addFact(list, t('threats.fact_contact'), report.contact || t('threats.no_contact'));
  if (report.internal_note) {
    addFact(list, t('threats.internal_note'), report.internal_note);
  }
  const badges = overdueBadges(report);
  if (badges.length) {
    const holder = document.createElement('span');
    holder.append(...badges);
    addFact(list, t('threats.fact_targets'), holder);
  }
  facts.append(...list.childNodes);
  ui.facts.replaceChildren(facts);

  ui.description.textContent = report.description || t('threats.no_description');
  ui.photos.replaceChildren(
    ...(report.photos || []).map((url, index) => {
      const link = document.createElement('a');
      link.href = url;
      link.target = '_blank';
      link.rel = 'noopener';
      const img = document.createElement('img');
      img.src = url;
      img.alt = t('map.photo_n', { n: index + 1 });
      img.dataset.testid = 'threat-photo';
      link.append(img);
      return link;
    }),
  );

  ui.history.replaceChildren(...(report.history || []).map(historyItem));

  const next = NEXT_STATUSES[report.status] || [];
  const chosen = ui.statusSelect.value;
  ui.statusSelect.replaceChildren(...next.map((status) => new Option(statusLabel(status), status)));
  if (!resetForm && next.includes(chosen)) {
    ui.statusSelect.value = chosen;
  }
  // Only a citizen's report has a follow link to show the invitation on.
  ui.invite.hidden = report.source === 'call';
  ui.invited.hidden = !report.invited_at;
  ui.invited.textContent = report.invited_at
    ? t('threats.invited_at', { when: formatDateTime(report.invited_at, lang) })
    : '';
  const final = next.length === 0;
  ui.statusSelect.disabled = final;
  ui.statusSubmit.disabled = final;
  ui.final.hidden = !final;
  if (resetForm) {
    ui.publicNote.value = '';
    ui.internalNote.value = '';
    ui.forwardNote.value = '';
    ui.actionStatus.textContent = '';
  }
}

/** @param {string} id */
function select(id) {
  const report = threats.reports.get(id);
  if (!report) {
    return;
  }
  const changed = threats.selectedId !== id;
  threats.selectedId = id;
  for (const item of ui.list.querySelectorAll('.threat-item')) {
    item.setAttribute('aria-selected', String(item.dataset.reportId === id));
  }
  renderMarkers([...threats.reports.values()].filter(matchesFilters));
  renderDetail(report, changed);
  if (changed && !report.read_at) {
    markRead(id);
  }
  if (threats.map && Number.isFinite(report.lat)) {
    const here = L.latLng(report.lat, report.lon);
    if (!threats.map.getBounds().contains(here)) {
      threats.map.panTo(here);
    }
  }
}

// --- actions -------------------------------------------------------------------------------

/**
 * Opening a report reads it (KMZB's 2-day target): the server stamps read_at on the first GET.
 * @param {string} id
 */
async function markRead(id) {
  try {
    applyReply(await fetchJson(`/api/staff/reports/${encodeURIComponent(id)}`));
  } catch (error) {
    console.warn('threats: read', error);
  }
}

/** @param {any} reply */
function applyReply(reply) {
  const updated = reply && (reply.report || reply);
  if (updated && updated.id !== undefined && updated.status) {
    upsert(updated, false);
    return true;
  }
  return false;
}

/** @param {unknown} error */
function actionError(error) {
  if (error instanceof ApiError) {
    return t('threats.refused', { reason: error.message });
  }
  return t('threats.load_failed');
}

async function changeStatus() {
  const id = threats.selectedId;
  const status = ui.statusSelect.value;
  if (!id || !status) {
    return;
  }
  ui.statusSubmit.disabled = true;
  ui.actionStatus.textContent = t('threats.saving');
  try {
    const reply = await postJson(`/api/staff/reports/${encodeURIComponent(id)}/status`, {
      status,
      public_note: ui.publicNote.value.trim(),
      internal_note: ui.internalNote.value.trim(),
    });
    if (!applyReply(reply)) {
      await loadReports();
    }
    ui.publicNote.value = '';
    ui.internalNote.value = '';
    ui.actionStatus.textContent = t('threats.saved', { status: statusLabel(status) });
  } catch (error) {
    ui.actionStatus.textContent = actionError(error);
  } finally {
    const report = threats.reports.get(id);
    ui.statusSubmit.disabled = !report || !(NEXT_STATUSES[report.status] || []).length;
  }
}

async function forward() {
  const id = threats.selectedId;
  if (!id) {
    return;
  }
  const to = ui.forwardTo.value;
  try {
    const reply = await postJson(`/api/staff/reports/${encodeURIComponent(id)}/forward`, {
      to,
      note: ui.forwardNote.value.trim(),
    });
    applyReply(reply);
    ui.forwardNote.value = '';
    ui.actionStatus.textContent = t('threats.forwarded', { to: FORWARD_TEXT[to] ? FORWARD_TEXT[to]() : to });
  } catch (error) {
    ui.actionStatus.textContent = actionError(error);
  }
}

async function invite() {
  const id = threats.selectedId;
  if (!id) {
    return;
  }
  ui.invite.disabled = true;
  try {
    applyReply(await postJson(`/api/staff/reports/${encodeURIComponent(id)}/invite`, {}));
    ui.actionStatus.textContent = t('threats.invite_sent');
  } catch (error) {
    ui.actionStatus.textContent = actionError(error);
  } finally {
    ui.invite.disabled = false;
  }
}

// --- live ----------------------------------------------------------------------------------

/**
 * @param {any} report
 * @param {boolean} isNew
 */
function upsert(report, isNew) {
  if (!report || report.id === undefined) {
    return;
  }
  const id = String(report.id);
  const known = threats.reports.get(id);
  // An event may carry the public fields only: keep what the staff list said.
  threats.reports.set(id, known ? { ...known, ...report } : report);
  render();
  if (isNew && !known) {
    const item = ui.list.querySelector(`.threat-item[data-report-id="${CSS.escape(id)}"]`);
    if (item) {
      item.classList.add('is-fresh');
      window.setTimeout(() => item.classList.remove('is-fresh'), FRESH_MARK_MS);
    }
  }
}

/** @param {any} socket the console's Socket.IO connection (`/console`) */
function listen(socket) {
  if (!socket) {
    return;
  }
  socket.on('event', (event) => {
    if (!event || !event.report) {
      return;
    }
    if (event.type === 'report.new') {
      upsert(event.report, true);
    } else if (event.type === 'report.updated') {
      upsert(event.report, false);
    }
  });
  // After a reconnect, events may have been missed: the list is read again.
  socket.on('connect', () => {
    if (threats.reports.size || ui.list.children.length === 0) {
      loadReports();
    }
  });
}

async function createMap() {
  try {
    const base = new CallerMap(ui.mapElement);
    threats.map = base.map;
    threats.streets = base.streets;
    const makeCluster = await loadMarkerCluster();
    threats.layer = (
      makeCluster
        ? makeCluster({ iconCreateFunction: clusterIcon, showCoverageOnHover: false, maxClusterRadius: 40 })
        : L.layerGroup()
    ).addTo(threats.map);
    threats.map.on('moveend', () => {
      if (ui.area.checked) {
        render();
      }
    });
    // The tab starts hidden: Leaflet measures the box again whenever it appears or resizes.
    new ResizeObserver(() => {
      threats.map.invalidateSize();
      if (!threats.fitted && threats.reports.size && ui.mapElement.clientWidth) {
        threats.fitted = true;
        fitToReports();
      }
    }).observe(ui.mapElement);
  } catch (error) {
    console.warn('threats: map unavailable', error);
  }
}

/**
 * Starts the Threats tab.
 * @param {any} socket the console's Socket.IO connection, shared with the calls
 */
export async function initThreats(socket) {
  if (!ui.panel) {
    return;
  }
  listen(socket);
  ui.filters.addEventListener('submit', (event) => event.preventDefault());
  for (const select of [ui.status, ui.category, ui.age]) {
    select.addEventListener('change', () => loadReports());
  }
  ui.area.addEventListener('change', () => render());
  ui.statusForm.addEventListener('submit', (event) => {
    event.preventDefault();
    changeStatus();
  });
  ui.forwardForm.addEventListener('submit', (event) => {
    event.preventDefault();
    forward();
  });
  ui.invite.addEventListener('click', () => invite());
  window.setInterval(() => {
    // Ages and overdue flags move on; not while the officer is moving through the list.
    if (!ui.panel.hidden && !ui.list.contains(document.activeElement)) {
      render();
    }
  }, AGE_TICK_MS);
  await createMap();
  const fallback = [];
  fillCategorySelect(ui.category, await loadCategories(fallback));
  await loadReports();
  ui.panel.dataset.ready = 'true';
}
