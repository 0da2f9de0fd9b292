// What the threat-map pages share: statuses and their colours, category and status names from the
// catalogue, the JSON fetch with the server's error codes, and leaflet.markercluster on top of the
// same Leaflet ES module that basemap.js uses.
import * as L from '/static/vendor/leaflet/leaflet-src.esm.js';
import { t } from './i18n.js';

/** Every status a report can have, in the order of its life (KMZB's verification flow). */
export const STATUSES = [
  'new',
  'verifying',
  'confirmed',
  'not_confirmed',
  'joke_or_mistake',
  'eliminated',
];

/** Transitions an officer may make; the server refuses the others anyway. */
export const NEXT_STATUSES = {
  new: ['verifying'],
  verifying: ['confirmed', 'not_confirmed', 'joke_or_mistake'],
  confirmed: ['eliminated'],
  not_confirmed: [],
  joke_or_mistake: [],
  eliminated: [],
};

// Names written out (not built from the code) so the catalogue test sees every key.
const STATUS_TEXT = {
  new: () => t('report.status.new'),
  verifying: () => t('report.status.verifying'),
  confirmed: () => t('report.status.confirmed'),
  not_confirmed: () => t('report.status.not_confirmed'),
  joke_or_mistake: () => t('report.status.joke_or_mistake'),
  eliminated: () => t('report.status.eliminated'),
  resolved: () => t('report.status.resolved'),
};

/** @param {string} status */
export function statusLabel(status) {
  return Object.hasOwn(STATUS_TEXT, status) ? STATUS_TEXT[status]() : status;
}

/**
 * A category's name; a code an admin added without a translation shows as the code, never as
 * a catalogue key.
 * @param {string} code
 */
export function categoryLabel(code) {
  const key = `category.${code}`;
  const text = t(key);
  return text === key ? code.replace(/_/g, ' ') : text;
}

/** An error the API answered with: `code` from `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {any} body
   */
  constructor(status, code, message, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/**
 * Fetches JSON from our own server; throws ApiError on a non-2xx answer (with the parsed body,
 * which carries e.g. the nearby reports of a 409).
 * @param {string} url
 * @param {RequestInit} [init]
 * @returns {Promise<any>}
 */
export async function fetchJson(url, init = {}) {
  let response;
  try {
    response = await fetch(url, {
      credentials: 'same-origin',
      ...init,
      headers: { Accept: 'application/json', ...(init.headers || {}) },
    });
  } catch (error) {
    throw new ApiError(0, 'network', String(error), null);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || response.statusText,
      body,
    );
  }
  return body;
}

/**
 * The categories the server accepts (an admin may edit the list); the fallback is the list the
 * page was rendered with.
 * @param {string[]} fallback
 * @returns {Promise<string[]>}
 */
export async function loadCategories(fallback) {
  try {
    const body = await fetchJson('/api/report-categories');
    const codes = (body.categories || []).map((item) => item.code).filter(Boolean);
    return codes.length ? codes : fallback;
  } catch (error) {
    console.warn('threats: categories', error);
    return fallback;
  }
}

/**
 * Fills a <select> with categories, keeping its first (placeholder) option and its value.
 * @param {HTMLSelectElement} select
 * @param {string[]} codes
 */
export function fillCategorySelect(select, codes) {
  const value = select.value;
  const first = select.options[0] && !select.options[0].value ? select.options[0] : null;
  select.replaceChildren(...(first ? [first] : []));
  for (const code of codes) {
    select.append(new Option(categoryLabel(code), code));
  }
  select.value = codes.includes(value) ? value : '';
}

/**
 * How long ago `iso` was, in the page's language ("3 hours ago").
 * @param {string} iso
 * @param {string} lang
 */
export function timeAgo(iso, lang) {
  const then = Date.parse(iso);
  if (!Number.isFinite(then)) {
    return '';
  }
  const secs = Math.round((then - Date.now()) / 1000);
  const format = new Intl.RelativeTimeFormat(lang, { numeric: 'auto' });
  const steps = [
    [60, 'second'],
    [3600, 'minute'],
    [86_400, 'hour'],
    [Infinity, 'day'],
  ];
  const sizes = { second: 1, minute: 60, hour: 3600, day: 86_400 };
  for (const [limit, unit] of steps) {
    if (Math.abs(secs) < limit) {
      return format.format(Math.round(secs / sizes[unit]), /** @type {any} */ (unit));
    }
  }
  return '';
}

/**
 * A date and time in the page's language.
 * @param {string} iso
 * @param {string} lang
 */
export function formatDateTime(iso, lang) {
  const then = new Date(iso);
  if (Number.isNaN(then.getTime())) {
    return iso;
  }
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(then);
}

/**
 * A small coloured dot for a status, drawn by CSS (`.status-dot[data-status]`).
 * @param {string} status
 */
export function statusIcon(status) {
  const html = document.createElement('span');
  html.className = 'threat-pin';
  html.dataset.status = status;
  return L.divIcon({
    className: 'threat-pin-icon',
    html,
    iconSize: [26, 26],
    iconAnchor: [13, 13],
  });
}

/**
 * A cluster's icon: its count, ringed in the most frequent status among the reports inside.
 * @param {any} cluster
 */
export function clusterIcon(cluster) {
  const markers = cluster.getAllChildMarkers();
  const counts = new Map();
  for (const marker of markers) {
    const status = marker.options.status;
    counts.set(status, (counts.get(status) || 0) + 1);
  }
  return countIcon(markers.length, Object.fromEntries(counts));
}

/**
 * A cluster's icon from its count and its statuses' counts (the server's clusters carry them).
 * @param {number} count
 * @param {Record<string, number>} statuses
 */
export function countIcon(count, statuses) {
  let top = 'new';
  let best = 0;
  for (const [status, n] of Object.entries(statuses || {})) {
    if (n > best) {
      top = status;
      best = n;
    }
  }
  const html = document.createElement('span');
  html.className = 'threat-cluster';
  html.dataset.status = top;
  // 94,849 in a 40-px ring would wrap: "95K" ("95 тыс."), the whole number in the title.
  const compact = new Intl.NumberFormat(document.documentElement.lang || 'en', {
    notation: 'compact',
    maximumFractionDigits: count < 10_000 ? 1 : 0,
  });
  html.textContent = compact.format(count);
  return L.divIcon({ className: 'threat-cluster-icon', html, iconSize: [44, 44] });
}

let clusterReady = null;

/**
 * leaflet.markercluster is a UMD file that extends a global `L`. It is given a copy of the ES
 * module's namespace (which is frozen), so the cluster group extends the very classes basemap.js
 * uses: loading leaflet.js as well would make two Leaflets whose layers do not mix.
 * @returns {Promise<(options?: object) => any>} a factory of cluster groups, or null without it
 */
export function loadMarkerCluster() {
  if (!clusterReady) {
    clusterReady = new Promise((resolve) => {
      const global = /** @type {any} */ (window);
      global.L = global.L || { ...L };
      const script = document.createElement('script');
      script.src = '/static/vendor/leaflet.markercluster/leaflet.markercluster.js';
      script.onload = () => resolve(global.L.markerClusterGroup || null);
      script.onerror = () => {
        console.warn('threats: markercluster not loaded; markers are not clustered');
        resolve(null);
      };
      document.head.append(script);
    });
  }
  return clusterReady;
}

export { L };
