// /stats: police calls by what the caller said was happening ("What is happening?" on the start
// screen), from GET /api/stats/calls; the filter (also ?situation= in the address) shows the
// count of one situation. Sets data-ready on its section once shown.
import { loadCatalog, t } from './i18n.js';

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const lang = document.documentElement.lang || 'en';
const numbers = new Intl.NumberFormat(lang);

/** @param {string | null} situation */
function label(situation) {
  return t(`situation.${situation || 'none'}`);
}

/** @param {string} situation '' for every call */
async function load(situation) {
  const query = situation ? `?situation=${encodeURIComponent(situation)}` : '';
  const response = await fetch(`/api/stats/calls${query}`, { headers: { Accept: 'application/json' } });
  if (!response.ok) {
    throw new Error(String(response.status));
  }
  return response.json();
}

/** @param {{by_situation: {situation: string | null, calls: number}[], calls: number}} stats */
function render(stats) {
  $('stats-situation-count').textContent = numbers.format(stats.calls);
  const rows = stats.by_situation.filter((row) => row.calls > 0);
  if (!rows.length) {
    return;
  }
  $('stats-table-situation').querySelector('tbody').replaceChildren(
    ...rows.map((row) => {
      const line = document.createElement('tr');
      line.dataset.situation = row.situation || 'none';
      const name = document.createElement('th');
      name.scope = 'row';
      name.textContent = label(row.situation);
      const count = document.createElement('td');
      count.className = 'num';
      count.textContent = numbers.format(row.calls);
      line.append(name, count);
      return line;
    }),
  );
}

async function show(situation) {
  const section = $('stats-situations');
  section.dataset.ready = 'false';
  section.dataset.situation = situation;
  try {
    render(await load(situation));
  } catch (error) {
    console.warn('stats: calls by situation not loaded', error);
    $('stats-situation-count').textContent = '–';
  }
  section.dataset.ready = 'true';
}

async function main() {
  await loadCatalog(lang);
  const filter = /** @type {HTMLSelectElement} */ ($('stats-situation-filter'));
  const asked = new URLSearchParams(window.location.search).get('situation') || '';
  if ([...filter.options].some((option) => option.value === asked)) {
    filter.value = asked;
  }
  filter.addEventListener('change', () => {
    const url = new URL(window.location.href);
    if (filter.value) {
      url.searchParams.set('situation', filter.value);
    } else {
      url.searchParams.delete('situation');
    }
    window.history.replaceState(null, '', url);
    show(filter.value);
  });
  await show(filter.value);
}

main();
