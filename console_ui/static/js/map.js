// Public threat map (/map), phone first, no account: the public reports, clustered on the server
// for the view on screen and coloured by status, and the report form (category, point, description, when, photos, contact) with the
// "is it one of these?" step that turns a duplicate into a confirmation ("me too").
import { CallerMap } from './basemap.js';
import { loadCatalog, t } from './i18n.js';
import {
  ApiError,
  L,
  categoryLabel,
  countIcon,
  fetchJson,
  fillCategorySelect,
  loadCategories,
  statusIcon,
  statusLabel,
  timeAgo,
} from './threats_common.js';

const DESCRIPTION_MAX_CHARS = 500;
const PHOTOS_MAX = 3;
const PHOTOS_MAX_BYTES = 5 * 1024 * 1024;
/** A fix this precise is good enough to pin a report; the browser may give a rough one first. */
const GEO_TIMEOUT_MS = 15_000;
/** Offline (country outlines only) a pin is shown at the deepest zoom the basemap has. */
const PIN_ZOOM_OFFLINE = 11;
const PIN_ZOOM_TILES = 17;
/** The first view of the reports: offline, close enough to see the borders around them. */
const OVERVIEW_ZOOM_OFFLINE = 8;
/** The finest cells the server makes (64 px at zoom 22: a couple of metres). */
const FINEST_CLUSTER_ZOOM = 22;
/** A cell opened as a list at the deepest zoom shows this many of its reports. */
const CLUSTER_LIST_MAX = 20;
/** A pan or zoom asks for its view once the map has stopped this long. */
const VIEW_SETTLE_MS = 40;
// A popup opens clear of the "Reports on the map" pill (top left), of the zoom and locate
// buttons (right) and of the report button (bottom right), all above the map's panes: Leaflet
// pans the map until it fits inside these, and on a phone it is narrow enough to fit at all
// (its own padding is about 40 px).
const POPUP_LEFT = 16;
const POPUP_RIGHT = 64;
const popupOptions = () => ({
  autoPanPaddingTopLeft: [POPUP_LEFT, 72],
  autoPanPaddingBottomRight: [POPUP_RIGHT, 96],
  maxWidth: Math.max(200, Math.min(300, window.innerWidth - POPUP_LEFT - POPUP_RIGHT - 40)),
});

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const page = {
  fab: $('new-report'),
  panel: document.getElementById('report-panel'),
  form: document.getElementById('report-form'),
  category: $('report-category'),
  description: $('report-description'),
  count: $('report-description-count'),
  point: $('report-point'),
  photos: $('report-photos'),
  thumbs: $('report-thumbs'),
  contact: $('report-contact'),
  time: $('report-time'),
  nearby: $('nearby'),
  nearbyList: $('nearby-list'),
  error: $('report-error'),
  status: $('report-status'),
  submit: $('report-submit'),
  done: $('report-done'),
  followLink: $('report-follow-link'),
  reportCount: $('report-count'),
  message: $('map-message'),
  mapElement: document.getElementById('map'),
};

const state = {
  lang: document.documentElement.lang || 'en',
  /** @type {any} */ map: null,
  /** @type {any} */ reports: null,
  /** @type {any} */ pin: null,
  /** @type {any} */ me: null,
  /** @type {{lat: number, lon: number} | null} */ point: null,
  /** @type {File[]} */ files: [],
  /** @type {string[]} */ thumbUrls: [],
  /** The nearby reports were shown for this point and category: the next submit is a new one. */
  nearbyShownFor: '',
  sending: false,
  offline: true,
  fitted: false,
  /** The newest view asked for: an older answer that comes later is dropped. */
  viewSeq: 0,
  /** @type {AbortController | null} */ viewAbort: null,
  viewTimer: 0,
};

// --- the map -------------------------------------------------------------------------------

function createMap() {
  const base = new CallerMap(page.mapElement);
  state.offline = !base.streets;
  state.map = base.map;
  state.map.zoomControl.setPosition('topright');
  state.map.on('click', (event) => {
    if (!page.panel.hidden) {
      setPoint(event.latlng.lat, event.latlng.lng, false);
      setPicking(false);
    }
  });
}

function createReportLayer() {
  state.reports = L.layerGroup().addTo(state.map);
  state.map.on('moveend', () => {
    window.clearTimeout(state.viewTimer);
    state.viewTimer = window.setTimeout(loadReports, VIEW_SETTLE_MS);
  });
}

/** @param {any} feature */
function reportPopup(feature) {
  const props = feature.properties || {};
  const box = document.createElement('div');
  box.className = 'report-popup';
  box.dataset.testid = 'report-popup';
  const title = document.createElement('strong');
  title.textContent = categoryLabel(props.category || '');
  const status = document.createElement('p');
  const dot = document.createElement('span');
  dot.className = 'status-dot';
  dot.dataset.status = props.status;
  status.append(dot, statusLabel(props.status));
  const meta = document.createElement('p');
  meta.className = 'hint';
  meta.textContent = [
    timeAgo(props.created_at, state.lang),
    t('map.confirmations', { count: props.confirmations || 0 }),
  ]
    .filter(Boolean)
    .join(' · ');
  box.append(title, status, meta);
  if (props.description) {
    const description = document.createElement('p');
    description.textContent = props.description;
    box.append(description);
  }
  if (props.public_note) {
    const note = document.createElement('p');
    note.className = 'public-note';
    note.textContent = props.public_note;
    box.append(note);
  }
  for (const url of (props.photos || []).slice(0, 3)) {
    const img = document.createElement('img');
    img.src = url;
    img.alt = t('map.photo_alt');
    img.loading = 'lazy';
    img.className = 'popup-photo';
    box.append(img);
  }
  return box;
}

/** The view's query: its bounding box and its zoom (the server's cells are 64 px at it). */
function viewQuery() {
  const bounds = state.map.getBounds();
  const west = Math.max(-180, bounds.getWest());
  const east = Math.min(180, bounds.getEast());
  const south = Math.max(-85, bounds.getSouth());
  const north = Math.min(85, bounds.getNorth());
  const zoom = Math.max(0, Math.min(FINEST_CLUSTER_ZOOM, Math.round(state.map.getZoom())));
  return new URLSearchParams({
    zoom: String(zoom),
    bbox: [west, south, east, north].map((v) => v.toFixed(6)).join(','),
  });
}

/** @param {any} feature a report alone in its cell */
function reportMarker(feature) {
  const [lon, lat] = feature.geometry.coordinates;
  const props = feature.properties || {};
  const marker = L.marker([lat, lon], {
    icon: statusIcon(props.status),
    keyboard: true,
    title: `${categoryLabel(props.category || '')}: ${statusLabel(props.status)}`,
  });
  marker.bindPopup(() => reportPopup(feature), popupOptions());
  marker.on('add', () => {
    const element = marker.getElement();
    if (element) {
      element.dataset.testid = 'map-report';
      element.dataset.reportId = String(props.id);
      element.dataset.status = props.status;
    }
  });
  return marker;
}

/** @param {any} feature a cell of several reports: a tap zooms into it */
function clusterMarker(feature) {
  const [lon, lat] = feature.geometry.coordinates;
  const props = feature.properties;
  const marker = L.marker([lat, lon], {
    icon: countIcon(props.count, props.statuses),
    keyboard: true,
    title: t('map.cluster_title', { count: props.count }),
  });
  marker.on('click', () => {
    if (state.map.getZoom() < state.map.getMaxZoom()) {
      state.map.fitBounds(props.bounds, { padding: [16, 16] });
    } else {
      showClusterList(marker.getLatLng(), props);
    }
  });
  marker.on('add', () => {
    const element = marker.getElement();
    if (element) {
      element.dataset.testid = 'map-cluster';
      element.dataset.count = String(props.count);
    }
  });
  return marker;
}

/**
 * At the map's deepest zoom a cell of several reports cannot be zoomed into: it opens as a
 * list of them, each opening its own popup.
 * @param {any} latlng
 * @param {any} props the cluster's
 */
async function showClusterList(latlng, props) {
  const [[south, west], [north, east]] = props.bounds;
  const query = new URLSearchParams({
    limit: String(CLUSTER_LIST_MAX),
    bbox: [west, south, east, north].map((v) => v.toFixed(6)).join(','),
  });
  let collection;
  try {
    collection = await fetchJson(`/api/reports?${query}`);
  } catch (error) {
    console.warn('map: cluster', error);
    showMessage(t('map.load_failed'));
    return;
  }
  const box = document.createElement('div');
  box.className = 'report-popup cluster-list';
  box.dataset.testid = 'cluster-list';
  const heading = document.createElement('strong');
  heading.textContent = t('map.cluster_here', { count: props.count });
  const list = document.createElement('ul');
  const popup = L.popup({ maxHeight: 280, ...popupOptions() }).setLatLng(latlng);
  for (const feature of collection.features || []) {
    const item = document.createElement('li');
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'cluster-item';
    open.dataset.testid = 'cluster-item';
    open.dataset.reportId = String(feature.properties.id);
    const dot = document.createElement('span');
    dot.className = 'status-dot';
    dot.dataset.status = feature.properties.status;
    open.append(dot, `${categoryLabel(feature.properties.category)} · ${statusLabel(feature.properties.status)}`);
    open.addEventListener('click', () => popup.setContent(reportPopup(feature)));
    item.append(open);
    list.append(item);
  }
  box.append(heading, list);
  const more = props.count - (collection.features || []).length;
  if (more > 0) {
    const rest = document.createElement('p');
    rest.className = 'hint';
    rest.textContent = t('map.cluster_more', { count: more });
    box.append(rest);
  }
  popup.setContent(box).openOn(state.map);
}

/** Asks for the view on screen and draws it; the newest answer wins. */
async function loadReports() {
  window.clearTimeout(state.viewTimer);
  state.viewSeq += 1;
  const seq = state.viewSeq;
  state.viewAbort?.abort();
  const abort = new AbortController();
  state.viewAbort = abort;
  const query = viewQuery();
  let collection;
  try {
    collection = await fetchJson(`/api/reports/clusters?${query}`, { signal: abort.signal });
  } catch (error) {
    if (!abort.signal.aborted) {
      console.warn('map: reports', error);
      showMessage(t('map.load_failed'));
    }
    return;
  }
  if (seq !== state.viewSeq) {
    return;
  }
  const features = (collection.features || []).filter(
    (feature) => feature.geometry && feature.geometry.type === 'Point',
  );
  const markers = features.map((feature) =>
    feature.properties?.cluster ? clusterMarker(feature) : reportMarker(feature),
  );
  state.reports.clearLayers();
  markers.forEach((marker) => state.reports.addLayer(marker));
  page.reportCount.textContent = String(collection.total);
  page.reportCount.dataset.count = String(collection.total);
  page.mapElement.dataset.viewZoom = query.get('zoom') || '';
  page.mapElement.dataset.viewBbox = query.get('bbox') || '';
  page.mapElement.dataset.viewShown = String(markers.length);
  page.mapElement.dataset.viewSeq = String(seq);
  if (!state.fitted && collection.bounds && !state.point) {
    // The first view shows where the reports are, not the whole world (its own moveend asks
    // for that view).
    state.fitted = true;
    state.map.fitBounds(collection.bounds, {
      maxZoom: state.offline ? OVERVIEW_ZOOM_OFFLINE : PIN_ZOOM_TILES,
      padding: [32, 32],
    });
  }
}

/** @param {string} text */
function showMessage(text) {
  page.message.textContent = text;
  page.message.hidden = !text;
}

// --- where: the user's location or a tap ---------------------------------------------------

/** @returns {Promise<{lat: number, lon: number, accuracy: number}>} */
function locate() {
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation) {
      reject(new Error('no geolocation'));
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (position) =>
        resolve({
          lat: position.coords.latitude,
          lon: position.coords.longitude,
          accuracy: position.coords.accuracy,
        }),
      reject,
      { enableHighAccuracy: true, timeout: GEO_TIMEOUT_MS, maximumAge: 60_000 },
    );
  });
}

/** @param {{lat: number, lon: number, accuracy: number}} fix */
function showMe(fix) {
  const here = L.latLng(fix.lat, fix.lon);
  if (!state.me) {
    state.me = L.circleMarker(here, {
      radius: 9,
      color: '#14171c',
      weight: 4,
      fillColor: '#ffffff',
      fillOpacity: 1,
      interactive: false,
      className: 'me-dot',
    }).addTo(state.map);
  } else {
    state.me.setLatLng(here);
  }
}

async function locateMe() {
  showMessage(t('map.locating'));
  try {
    const fix = await locate();
    showMe(fix);
    state.fitted = true; // the user chose where to look: the reports' overview must not move it
    state.map.setView([fix.lat, fix.lon], state.offline ? PIN_ZOOM_OFFLINE : PIN_ZOOM_TILES);
    showMessage('');
    return fix;
  } catch (error) {
    console.info('map: no location', error);
    showMessage(t('map.no_location'));
    return null;
  }
}

/**
 * @param {number} lat
 * @param {number} lon
 * @param {boolean} fromLocation
 */
function setPoint(lat, lon, fromLocation) {
  state.point = { lat, lon };
  state.fitted = true;
  const here = L.latLng(lat, lon);
  if (!state.pin) {
    const html = document.createElement('span');
    html.className = 'report-pin';
    state.pin = L.marker(here, {
      icon: L.divIcon({ className: 'report-pin-icon', html, iconSize: [34, 44], iconAnchor: [17, 42] }),
      draggable: true,
      zIndexOffset: 1000,
      title: t('map.point'),
    }).addTo(state.map);
    state.pin.on('dragend', () => {
      const moved = state.pin.getLatLng();
      setPoint(moved.lat, moved.lng, false);
    });
    state.pin.on('add', () => {
      const element = state.pin.getElement();
      if (element) {
        element.dataset.testid = 'report-pin';
      }
    });
    state.pin.getElement()?.setAttribute('data-testid', 'report-pin');
  } else {
    state.pin.setLatLng(here);
  }
  page.point.dataset.lat = lat.toFixed(6);
  page.point.dataset.lon = lon.toFixed(6);
  const where = { lat: lat.toFixed(5), lon: lon.toFixed(5) };
  page.point.textContent = fromLocation ? t('map.point_here', where) : t('map.point_chosen', where);
  page.point.classList.add('is-set');
  showAboveSheet(here);
  resetNearby();
}

/**
 * Keeps the pin in sight: on a phone the form is a sheet over the lower part of the map, so the
 * pin goes to the middle of the part still showing.
 * @param {any} here
 */
function showAboveSheet(here) {
  const size = state.map.getSize();
  let bottom = size.y;
  if (!page.panel.hidden && page.panel.dataset.picking !== 'true') {
    const top = page.panel.getBoundingClientRect().top - page.mapElement.getBoundingClientRect().top;
    if (top > size.y / 4 && top < size.y) {
      bottom = top;
    }
  }
  const at = state.map.latLngToContainerPoint(here);
  const margin = 40;
  if (at.x < margin || at.x > size.x - margin || at.y < margin || at.y > bottom - margin) {
    state.map.panBy([at.x - size.x / 2, at.y - bottom / 2]);
  }
}

async function useMyLocation() {
  page.point.textContent = t('map.locating');
  const fix = await locateMe();
  if (fix) {
    setPoint(fix.lat, fix.lon, true);
  } else if (!state.point) {
    page.point.textContent = t('map.point_none');
  }
}

/** @param {boolean} picking */
function setPicking(picking) {
  page.panel.dataset.picking = String(picking);
  if (picking && state.pin) {
    showAboveSheet(state.pin.getLatLng());
  }
}

// --- the form ------------------------------------------------------------------------------

/** @param {boolean} open */
export function setFormOpen(open) {
  page.panel.hidden = !open;
  setPicking(false);
  page.fab.setAttribute('aria-expanded', String(open));
  page.fab.classList.toggle('is-open', open);
  const label = open ? t('map.close_report') : t('map.new_report');
  page.fab.setAttribute('aria-label', label);
  page.fab.title = label;
  // The pin belongs to the form: it hides with it and comes back where it was.
  if (state.pin) {
    if (open) {
      state.pin.addTo(state.map);
    } else {
      state.pin.remove();
    }
  }
  if (open) {
    showForm();
    page.category.focus();
    if (!state.point) {
      // Where the user stands is the likeliest place; a tap on the map moves the pin.
      useMyLocation();
    }
  } else {
    page.fab.focus();
  }
}

function showForm() {
  page.form.hidden = false;
  page.done.hidden = true;
}

function updateCounter() {
  const used = page.description.value.length;
  page.count.textContent = `${used} / ${DESCRIPTION_MAX_CHARS}`;
  page.count.classList.toggle('is-near', used > DESCRIPTION_MAX_CHARS - 50);
}

/** @param {string} text */
function showError(text) {
  page.error.textContent = text;
  page.error.hidden = !text;
}

function renderThumbs() {
  state.thumbUrls.forEach((url) => URL.revokeObjectURL(url));
  state.thumbUrls = [];
  const items = state.files.map((file, index) => {
    const url = URL.createObjectURL(file);
    state.thumbUrls.push(url);
    const item = document.createElement('li');
    item.className = 'thumb';
    item.dataset.testid = 'report-thumb';
    const img = document.createElement('img');
    img.src = url;
    img.alt = t('map.photo_n', { n: index + 1 });
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'thumb-remove';
    remove.textContent = '×';
    remove.setAttribute('aria-label', t('map.photo_remove', { n: index + 1 }));
    remove.addEventListener('click', () => {
      state.files.splice(index, 1);
      renderThumbs();
    });
    item.append(img, remove);
    return item;
  });
  page.thumbs.replaceChildren(...items);
}

function onPhotosChosen() {
  const chosen = [...(page.photos.files || [])];
  page.photos.value = '';
  const images = chosen.filter((file) => file.type.startsWith('image/'));
  if (images.length < chosen.length) {
    showError(t('map.error.not_image'));
    return;
  }
  const next = [...state.files, ...images];
  if (next.length > PHOTOS_MAX) {
    showError(t('map.error.too_many_photos', { max: PHOTOS_MAX }));
    return;
  }
  const bytes = next.reduce((sum, file) => sum + file.size, 0);
  if (bytes > PHOTOS_MAX_BYTES) {
    showError(t('map.error.photos_too_large', { mb: PHOTOS_MAX_BYTES / 1024 / 1024 }));
    return;
  }
  showError('');
  state.files = next;
  renderThumbs();
}

function checkForm() {
  if (!page.category.value) {
    showError(t('map.error.no_category'));
    page.category.focus();
    return false;
  }
  if (!state.point) {
    showError(t('map.error.no_point'));
    return false;
  }
  if (page.description.value.length > DESCRIPTION_MAX_CHARS) {
    showError(t('map.error.description_too_long', { max: DESCRIPTION_MAX_CHARS }));
    page.description.focus();
    return false;
  }
  showError('');
  return true;
}

function nearbyKey() {
  return state.point
    ? `${page.category.value}@${state.point.lat.toFixed(6)},${state.point.lon.toFixed(6)}`
    : '';
}

function resetNearby() {
  page.nearby.hidden = true;
  page.nearbyList.replaceChildren();
  state.nearbyShownFor = '';
}

/**
 * "Is it one of these?": each nearby open report with a "me too" button.
 * @param {any[]} reports
 */
function showNearby(reports) {
  const items = reports.map((report) => {
    const item = document.createElement('li');
    item.className = 'nearby-item';
    item.dataset.testid = 'nearby-item';
    item.dataset.reportId = String(report.id);
    const text = document.createElement('div');
    text.className = 'nearby-text';
    const description = document.createElement('p');
    description.className = 'nearby-description';
    description.textContent = report.description || categoryLabel(page.category.value);
    const meta = document.createElement('p');
    meta.className = 'hint';
    const confirmations = document.createElement('span');
    confirmations.dataset.testid = 'nearby-confirmations';
    confirmations.dataset.count = String(report.confirmations || 0);
    confirmations.textContent = t('map.confirmations', { count: report.confirmations || 0 });
    meta.append(
      [
        t('map.distance_m', { m: Math.round(report.distance_m || 0) }),
        timeAgo(report.created_at, state.lang),
      ]
        .filter(Boolean)
        .join(' · '),
      ' · ',
      confirmations,
    );
    text.append(description, meta);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'btn btn-primary';
    button.dataset.testid = 'nearby-confirm';
    button.textContent = t('map.me_too');
    button.addEventListener('click', () => confirmExisting(report.id, item, button));
    item.append(text, button);
    return item;
  });
  page.nearbyList.replaceChildren(...items);
  page.nearby.hidden = false;
  state.nearbyShownFor = nearbyKey();
  page.nearby.scrollIntoView({ block: 'nearest' });
  page.status.textContent = t('map.nearby_found', { count: reports.length });
}

/**
 * @param {string | number} id
 * @param {HTMLElement} item
 * @param {HTMLButtonElement} button
 */
async function confirmExisting(id, item, button) {
  button.disabled = true;
  try {
    const reply = await fetchJson(`/api/reports/${encodeURIComponent(id)}/confirm`, {
      method: 'POST',
    });
    const counter = item.querySelector('[data-testid="nearby-confirmations"]');
    counter.dataset.count = String(reply.confirmations);
    counter.textContent = t('map.confirmations', { count: reply.confirmations });
    button.textContent = t('map.me_too_done');
    item.dataset.confirmed = 'true';
    page.status.textContent = t('map.thanks_confirmed');
    loadReports();
  } catch (error) {
    button.disabled = false;
    showError(errorText(error));
  }
}

/** @param {unknown} error */
function errorText(error) {
  if (error instanceof ApiError) {
    if (error.status === 429) {
      return t('map.error.once_a_day');
    }
    if (error.status === 0) {
      return t('map.error.network');
    }
    if (error.code === 'photos_too_many_pixels' || error.code === 'image_too_large') {
      return t('map.error.photos_too_many_pixels');
    }
    if (error.status === 413) {
      return t('map.error.photos_too_large', { mb: PHOTOS_MAX_BYTES / 1024 / 1024 });
    }
    if (error.code === 'uploads_busy') {
      return t('map.error.busy');
    }
    return t('map.error.refused', { reason: error.message });
  }
  return t('map.error.network');
}

/** @param {boolean} duplicateOk */
function buildBody(duplicateOk) {
  const body = new FormData();
  body.append('category', page.category.value);
  body.append('lat', String(state.point.lat));
  body.append('lon', String(state.point.lon));
  body.append('description', page.description.value.trim());
  const days = [...page.form.querySelectorAll('input[name="days"]:checked')].map((box) => box.value);
  if (days.length) {
    body.append('days', days.join(','));
  }
  body.append('time_of_day', page.time.value || 'any');
  if (page.contact.value.trim()) {
    body.append('contact', page.contact.value.trim());
  }
  if (duplicateOk) {
    body.append('duplicate_ok', '1');
  }
  for (const file of state.files) {
    body.append('photos', file, file.name);
  }
  return body;
}

/** @param {boolean} duplicateOk the user said "no, mine is new" */
async function send(duplicateOk) {
  if (state.sending || !checkForm()) {
    return;
  }
  state.sending = true;
  page.submit.disabled = true;
  page.status.textContent = t('map.sending');
  try {
    if (!duplicateOk && state.nearbyShownFor !== nearbyKey()) {
      const query = new URLSearchParams({
        lat: String(state.point.lat),
        lon: String(state.point.lon),
        category: page.category.value,
      });
      const found = await fetchJson(`/api/reports/nearby?${query}`).catch((error) => {
        // The check helps; it must not stop a report.
        console.warn('map: nearby', error);
        return { nearby: [] };
      });
      if (found.nearby && found.nearby.length) {
        showNearby(found.nearby);
        return;
      }
    }
    const reply = await fetchJson('/api/reports', {
      method: 'POST',
      body: buildBody(duplicateOk || state.nearbyShownFor === nearbyKey()),
    });
    showDone(reply);
  } catch (error) {
    if (error instanceof ApiError && error.status === 409 && error.body?.nearby?.length) {
      showNearby(error.body.nearby);
    } else {
      page.status.textContent = '';
      showError(errorText(error));
    }
  } finally {
    state.sending = false;
    page.submit.disabled = false;
  }
}

/** @param {{id: any, status: string, follow_url: string}} reply */
function showDone(reply) {
  const url = new URL(reply.follow_url, window.location.origin).href;
  page.followLink.href = url;
  page.followLink.textContent = url;
  page.done.dataset.reportId = String(reply.id);
  page.form.hidden = true;
  page.done.hidden = false;
  page.status.textContent = '';
  page.form.reset();
  state.files = [];
  renderThumbs();
  updateCounter();
  resetNearby();
  state.point = null;
  state.pin?.remove();
  state.pin = null;
  page.point.textContent = t('map.point_none');
  page.point.classList.remove('is-set');
  page.point.dataset.lat = '';
  page.point.dataset.lon = '';
  page.done.scrollIntoView({ block: 'start' });
  page.followLink.focus({ preventScroll: true });
  loadReports();
}

async function copyLink() {
  const status = $('report-copy-status');
  try {
    await navigator.clipboard.writeText(page.followLink.href);
    status.textContent = t('map.link_copied');
  } catch {
    // No clipboard (plain http, old browser): select the link text for a manual copy.
    const range = document.createRange();
    range.selectNodeContents(page.followLink);
    const selection = window.getSelection();
    selection?.removeAllRanges();
    selection?.addRange(range);
    status.textContent = t('map.link_select');
  }
}

function bind() {
  page.fab.addEventListener('click', () => setFormOpen(page.panel.hidden));
  $('report-cancel').addEventListener('click', () => setFormOpen(false));
  $('report-close').addEventListener('click', () => setFormOpen(false));
  $('report-done-close').addEventListener('click', () => setFormOpen(false));
  $('report-copy-link').addEventListener('click', copyLink);
  $('report-use-location').addEventListener('click', useMyLocation);
  $('report-pick-point').addEventListener('click', () => setPicking(true));
  $('report-pick-done').addEventListener('click', () => setPicking(false));
  $('locate-me').addEventListener('click', locateMe);
  $('report-new-anyway').addEventListener('click', () => send(true));
  page.description.addEventListener('input', updateCounter);
  page.photos.addEventListener('change', onPhotosChosen);
  page.category.addEventListener('change', resetNearby);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !page.panel.hidden) {
      setFormOpen(false);
    }
  });
  page.form.addEventListener('submit', (event) => {
    event.preventDefault();
    send(false);
  });
}

async function main() {
  bind();
  updateCounter();
  const fallback = [...page.category.options].map((option) => option.value).filter(Boolean);
  await loadCatalog(state.lang);
  try {
    createMap();
    createReportLayer();
  } catch (error) {
    console.warn('map: unavailable', error);
  }
  fillCategorySelect(page.category, await loadCategories(fallback));
  if (state.reports) {
    await loadReports();
  }
  document.body.dataset.ready = 'true';
}

main();
