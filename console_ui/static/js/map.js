// Public threat map (/map): for now only the report form's open/close. Leaflet, the
// markers and POST /api/reports plug in later.
import { loadCatalog, t } from './i18n.js';

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const fab = $('new-report');
const panel = document.getElementById('report-panel');
const form = document.getElementById('report-form');
const status = $('report-status');

/** @param {boolean} open */
export function setFormOpen(open) {
  panel.hidden = !open;
  fab.setAttribute('aria-expanded', String(open));
  fab.classList.toggle('is-open', open);
  const label = open ? t('map.close_report') : t('map.new_report');
  fab.setAttribute('aria-label', label);
  fab.title = label;
  if (open) {
    $('report-category').focus();
  } else {
    fab.focus();
  }
}

function bind() {
  fab.addEventListener('click', () => setFormOpen(panel.hidden));
  $('report-cancel').addEventListener('click', () => setFormOpen(false));
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !panel.hidden) {
      setFormOpen(false);
    }
  });
  form.addEventListener('submit', (event) => {
    // Sending comes with the reports API; until then the form only checks itself.
    event.preventDefault();
    status.textContent = form.reportValidity() ? t('map.not_sent_yet') : '';
  });
}

async function main() {
  bind();
  await loadCatalog(document.documentElement.lang);
  document.body.dataset.ready = 'true';
}

main();
