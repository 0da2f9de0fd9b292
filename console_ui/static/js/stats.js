// Public statistics (/stats): the figures of GET /api/stats as numbers, charts (Chart.js, global
// `Chart` from its UMD file) each with a table as its text alternative, and a heat layer of the
// confirmed threats on a small Leaflet map (circles whose opacity grows with their weight).
import { CallerMap } from './basemap.js';
import { loadCatalog, t } from './i18n.js';
import { L, STATUSES, categoryLabel, fetchJson, statusLabel } from './threats_common.js';

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const lang = document.documentElement.lang || 'en';
const HEAT_MIN_RADIUS_PX = 6;
const HEAT_MAX_RADIUS_PX = 22;
const HEAT_ZOOM_OFFLINE = 10;
/** A horizontal bar chart grows with its rows: this much per row, plus the axis. */
const BAR_ROW_REM = 2.25;
const BAR_AXIS_REM = 3;
const BAR_MAX_THICKNESS_PX = 48;

const numbers = new Intl.NumberFormat(lang);
const percent = new Intl.NumberFormat(lang, { style: 'percent', maximumFractionDigits: 1 });

/** @param {string} name a custom property of threats.css */
function cssColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || '#888888';
}

/** "2026-11" in the page's language ("November 2026"). @param {string} month */
function monthLabel(month) {
  const [year, number] = month.split('-').map(Number);
  if (!year || !number) {
    return month;
  }
  return new Intl.DateTimeFormat(lang, { month: 'long', year: 'numeric', timeZone: 'UTC' }).format(
    new Date(Date.UTC(year, number - 1, 1)),
  );
}

/** A grid cell as coordinates in the page's language. @param {{lat: number, lon: number, area: string}} cell */
function areaLabel(cell) {
  if (!Number.isFinite(cell.lat) || !Number.isFinite(cell.lon)) {
    return String(cell.area);
  }
  const degrees = new Intl.NumberFormat(lang, { minimumFractionDigits: 3, maximumFractionDigits: 3 });
  return t('stats.area_cell', { lat: degrees.format(cell.lat), lon: degrees.format(cell.lon) });
}

/**
 * Fills a section's table (the chart's text alternative).
 * @param {string} section
 * @param {Array<[string, number]>} rows label and count
 */
function fillTable(section, rows) {
  const body = $(`stats-table-${section}`).querySelector('tbody');
  if (!rows.length) {
    return;
  }
  body.replaceChildren(
    ...rows.map(([label, count]) => {
      const row = document.createElement('tr');
      const name = document.createElement('th');
      name.scope = 'row';
      name.textContent = label;
      const value = document.createElement('td');
      value.className = 'num';
      value.textContent = numbers.format(count);
      row.append(name, value);
      return row;
    }),
  );
}

/**
 * Draws a chart in a section's box.
 * @param {string} section
 * @param {string} type bar | doughnut
 * @param {Array<[string, number]>} rows
 * @param {string[] | string} colours
 * @param {object} [options]
 */
function drawChart(section, type, rows, colours, options = {}) {
  const Chart = /** @type {any} */ (window).Chart;
  const box = $(`stats-chart-${section}`);
  if (!Chart || !rows.length) {
    return;
  }
  const canvas = document.createElement('canvas');
  box.replaceChildren(canvas);
  if (options.indexAxis === 'y') {
    box.style.height = `${Math.max(8, rows.length * BAR_ROW_REM + BAR_AXIS_REM)}rem`;
  }
  const styles = getComputedStyle(document.body);
  Chart.defaults.font.family = styles.fontFamily;
  Chart.defaults.color = styles.color;
  new Chart(canvas, {
    type,
    data: {
      labels: rows.map(([label]) => label),
      datasets: [
        {
          label: t('stats.col_count'),
          data: rows.map(([, count]) => count),
          backgroundColor: colours,
          borderWidth: type === 'doughnut' ? 2 : 0,
          maxBarThickness: BAR_MAX_THICKNESS_PX,
        },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      responsive: true,
      plugins: { legend: { display: type === 'doughnut', position: 'bottom' } },
      ...options,
    },
  });
}

/** @param {Array<[number, number, number]>} heat */
function drawHeat(heat) {
  const element = document.getElementById('heat-map');
  let base;
  try {
    base = new CallerMap(element);
  } catch (error) {
    console.warn('stats: map unavailable', error);
    return;
  }
  const map = base.map;
  const points = heat.filter(
    (point) => Array.isArray(point) && Number.isFinite(point[0]) && Number.isFinite(point[1]),
  );
  element.dataset.points = String(points.length);
  if (!points.length) {
    return;
  }
  const heaviest = Math.max(...points.map((point) => Number(point[2]) || 1));
  const colour = cssColour('--st-confirmed');
  const layer = L.layerGroup(
    points.map(([lat, lon, weight]) => {
      const share = (Number(weight) || 1) / heaviest;
      return L.circleMarker([lat, lon], {
        radius: HEAT_MIN_RADIUS_PX + share * (HEAT_MAX_RADIUS_PX - HEAT_MIN_RADIUS_PX),
        stroke: false,
        fillColor: colour,
        fillOpacity: 0.15 + 0.6 * share,
        interactive: false,
        className: 'heat-spot',
      });
    }),
  ).addTo(map);
  const bounds = L.latLngBounds(points.map(([lat, lon]) => [lat, lon]));
  map.fitBounds(bounds, { maxZoom: base.streets ? 15 : HEAT_ZOOM_OFFLINE, padding: [20, 20] });
  return layer;
}

/** @param {any} stats */
function render(stats) {
  $('stats-total').textContent = numbers.format(stats.total || 0);
  $('stats-total').dataset.value = String(stats.total || 0);
  // Below the server's minimum count there is no share to show, only how many were confirmed.
  const shown = stats.confirmed_pct !== null && stats.confirmed_pct !== undefined;
  const pct = Number(stats.confirmed_pct);
  $('stats-confirmed-pct').textContent =
    shown && Number.isFinite(pct) ? percent.format(pct / 100) : numbers.format(stats.confirmed || 0);
  $('stats-confirmed-pct').dataset.value = String(stats.confirmed_pct ?? '');
  $('stats-confirmed-pct').dataset.share = shown ? 'shown' : 'too-few';
  $('stats-confirmed-label').textContent = shown
    ? t('stats.confirmed_pct')
    : t('stats.confirmed_few', { count: numbers.format(stats.min_reports_for_share || 0) });

  const byCategory = Object.entries(stats.by_category || {})
    .map(([code, count]) => /** @type {[string, number]} */ ([categoryLabel(code), Number(count)]))
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0], lang));
  fillTable('category', byCategory);
  drawChart('category', 'bar', byCategory, cssColour('--primary'), {
    indexAxis: 'y',
    scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
  });

  const statusCodes = Object.keys(stats.by_status || {}).sort(
    (a, b) => STATUSES.indexOf(a) - STATUSES.indexOf(b),
  );
  const byStatus = statusCodes.map(
    (code) => /** @type {[string, number]} */ ([statusLabel(code), Number(stats.by_status[code])]),
  );
  fillTable('status', byStatus);
  drawChart(
    'status',
    'doughnut',
    byStatus,
    statusCodes.map((code) => cssColour(`--st-${code}`)),
  );

  // Grid cells named by their centre ("52.225,21.025"), the busiest first as the server sent them.
  if (stats.areas_named) {
    // The centre's own districts; a report outside all of them still counts, in its grid cell.
    document.getElementById('stats-area-hint').textContent = t('stats.area_hint_named');
    const head = $('stats-table-area').querySelector('thead th');
    if (head) head.textContent = t('stats.col_area_named');
  }
  const byArea = (stats.by_area || []).map(
    (cell) => /** @type {[string, number]} */ ([areaLabel(cell), Number(cell.count)]),
  );
  fillTable('area', byArea);
  drawChart('area', 'bar', byArea, cssColour('--primary'), {
    indexAxis: 'y',
    scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
  });

  const byMonth = Object.keys(stats.by_month || {})
    .sort()
    .map((month) => /** @type {[string, number]} */ ([monthLabel(month), Number(stats.by_month[month])]));
  fillTable('month', byMonth);
  drawChart('month', 'bar', byMonth, cssColour('--primary'), {
    scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
  });

  drawHeat(stats.heat || []);
}

async function main() {
  await loadCatalog(lang);
  try {
    render(await fetchJson('/api/stats'));
  } catch (error) {
    console.warn('stats: not loaded', error);
    $('stats-status').textContent = t('stats.load_failed');
    drawHeat([]);
  }
  document.body.dataset.ready = 'true';
}

main();
