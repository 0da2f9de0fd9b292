// Operator console (/console): the entry. It wires the modules together (the queue, the open call
// and its media, the dialogs, the keyboard shortcuts, the Threats tab), keeps the tabs and the
// shift, and opens Socket.IO /console (the staff cookie authenticates).
import { CallerMap } from './basemap.js';
import { bindCall, onCallEvent } from './console_call.js';
import { bindDialogs } from './console_dialogs.js';
import { loadIceServers } from './console_media.js';
import { live, page, setCallStatus, setConnection } from './console_page.js';
import { allowSound, bindQueue, onQueueEvent, refreshQueue, renderQueue, startWaitTimes } from './console_queue.js';
import { bindShortcuts } from './console_shortcuts.js';
import { initThreats } from './console_threats.js';
import { loadCatalog, t } from './i18n.js';
import { connect, followSessionEnd } from './socket.js';

let onShift = false;

function renderShift() {
  const on = onShift;
  page.shiftButton.setAttribute('aria-pressed', String(on));
  page.shiftButton.textContent = on ? t('console.end_shift') : t('console.start_shift');
  page.shiftState.dataset.state = on ? 'on' : 'off';
  page.shiftState.textContent = on ? t('console.shift_on') : t('console.shift_off');
  document.body.dataset.shift = on ? 'on' : 'off';
}

/** @param {HTMLElement} tab */
function selectTab(tab) {
  for (const other of page.tabs) {
    const selected = other === tab;
    other.setAttribute('aria-selected', String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute('aria-controls')).hidden = !selected;
  }
  tab.focus();
  live.map?.refresh();
}

function bind() {
  bindShortcuts();
  page.shiftButton.addEventListener('click', () => {
    // Browsers only let a page play sound after a user gesture: this click is that gesture.
    onShift = !onShift;
    renderShift();
    if (onShift) {
      allowSound();
    }
  });
  bindQueue();
  bindCall();
  bindDialogs();
  page.tabs.forEach((tab, index) => {
    tab.addEventListener('click', () => selectTab(tab));
    tab.addEventListener('keydown', (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) {
        selectTab(page.tabs[(index + step + page.tabs.length) % page.tabs.length]);
      }
    });
  });
}

function openSocket() {
  const socket = connect('/console');
  live.socket = socket;
  followSessionEnd(socket);
  socket.on('connect', () => {
    setConnection('connected');
    refreshQueue();
  });
  socket.on('disconnect', () => setConnection('reconnecting'));
  socket.on('connect_error', (error) => {
    const code = error && error.data && error.data.code;
    setConnection(code === 'unauthorized' ? 'refused' : 'reconnecting');
  });
  socket.on('error', (error) => console.warn('console: refused', error));
  socket.on('event', (event) => {
    if (!event || !event.type) {
      return;
    }
    if (!onQueueEvent(event)) {
      onCallEvent(event);
    }
  });
}

async function main() {
  bind();
  await loadCatalog(document.documentElement.lang);
  renderShift();
  setCallStatus('idle');
  setConnection('connecting');
  renderQueue();
  startWaitTimes();
  try {
    live.map = new CallerMap(page.map);
  } catch (error) {
    console.warn('console: map unavailable', error);
  }
  await loadIceServers();
  openSocket();
  initThreats(live.socket);
  document.body.dataset.ready = 'true';
}

main();
