// Supervisor wall (/wall): a clock now; queue figures, live calls and operator states plug in
// through `render*` once the dashboard events exist.
import { formatDuration, loadCatalog, t } from './i18n.js';

const clock = document.querySelector('[data-testid="wall-clock"]');

function tickClock() {
  clock.textContent = new Date().toLocaleTimeString(document.documentElement.lang, {
    hour: '2-digit',
    minute: '2-digit',
  });
}

/**
 * Updates one channel's figures.
 * @param {string} channel
 * @param {{waiting: number, longestWaitSecs: number, slaPercent: number | null, operatorsAvailable: number}} figures
 */
export function renderQueue(channel, figures) {
  const set = (testid, text) => {
    const element = document.querySelector(`[data-testid="${testid}"][data-channel="${channel}"]`);
    if (element) {
      element.textContent = text;
    }
  };
  set('queue-count', String(figures.waiting));
  set('queue-longest-wait', formatDuration(figures.longestWaitSecs));
  set('queue-sla', figures.slaPercent === null ? '–' : t('wall.percent', { value: Math.round(figures.slaPercent) }));
  set('operators-available', String(figures.operatorsAvailable));
}

async function main() {
  tickClock();
  window.setInterval(tickClock, 15_000);
  await loadCatalog(document.documentElement.lang);
  document.body.dataset.ready = 'true';
}

main();
