// Operator console (/console): the entry. It wires the modules together (the queue, the open call
// and its media, the dialogs, the keyboard shortcuts, the Threats tab), keeps the tabs and the
// shift, and opens Socket.IO /console (the staff cookie authenticates).
import { CallerMap } from './basemap.js';
import { bindCall, onCallEvent } from './console_call.js';
import { bindDialogs } from './console_dialogs.js';
import { bindInvite } from './console_invite.js';
import { loadIceServers, prepareMicrophone } from './console_media.js';
import { live, page, setCallStatus, setConnection, setDegraded } from './console_page.js';
import { allowSound, bindQueue, lastCalls, onQueueEvent, refreshQueue, renderQueue, startWaitTimes } from './console_queue.js';
import { bindRouting, onRoutingEvent, refreshStatus } from './console_routing.js';
import { bindShortcuts } from './console_shortcuts.js';
import { initMessages } from './console_threads.js';
import { initThreats } from './console_threats.js';
import { bindTransfer, onTransferEvent, refreshOffers } from './console_transfer.js';
import { loadCatalog, t } from './i18n.js';
import { connect, followSessionEnd, request } from './socket.js';

let onShift = false;

function renderShift() {
  const on = onShift;
  page.shiftButton.setAttribute('aria-pressed', String(on));
  page.shiftButton.textContent = on ? t('console.end_shift') : t('console.start_shift');
  page.shiftState.dataset.state = on ? 'on' : 'off';
  page.shiftState.textContent = on ? t('console.shift_on') : t('console.shift_off');
  document.body.dataset.shift = on ? 'on' : 'off';
}

/**
 * Tells the server whether this console is on shift: on shift, its session stays alive while
 * the socket is open, however long the queue is quiet; off shift, the idle lock applies.
 */
async function reportShift() {
  if (!live.socket?.connected) {
    return; // said again on the next connect
  }
  try {
    await request(live.socket, 'shift', { on: onShift });
  } catch (error) {
    console.warn('console: shift', error);
  }
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
    reportShift();
    if (onShift) {
      allowSound();
      prepareMicrophone();
    }
  });
  bindQueue();
  bindCall();
  bindDialogs();
  bindInvite();
  bindTransfer();
  bindRouting();
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

/** The queue, this operator's state, offers and the open call (by seq), read again. */
function resync() {
  refreshQueue().then(() => refreshStatus(lastCalls));
  refreshOffers();
}

function openSocket() {
  const socket = connect('/console');
  live.socket = socket;
  followSessionEnd(socket);
  socket.on('connect', () => {
    setConnection('connected');
    setDegraded([]); // a socket is let in only by a node whose database answers
    if (onShift) {
      reportShift();
    }
    resync();
  });
  socket.on('disconnect', () => setConnection('reconnecting'));
  // A refused session goes to the sign-in page (followSessionEnd); until it loads, say so.
  socket.on('connect_error', (error) => {
    const code = error && error.data && error.data.code;
    setConnection(code === 'unauthorized' ? 'refused' : 'reconnecting');
  });
  socket.on('error', (error) => console.warn('console: refused', error));
  socket.on('event', (event) => {
    if (!event || !event.type) {
      return;
    }
    if (event.type === 'node.degraded') {
      setDegraded(event.stores);
      return;
    }
    if (event.type === 'console.resync') {
      // The node's bus to the other nodes was away: what they emitted meanwhile never came.
      resync();
      return;
    }
    if (onRoutingEvent(event)) {
      return;
    }
    if (!onQueueEvent(event) && !onTransferEvent(event)) {
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
  initMessages(live.socket);
  document.body.dataset.ready = 'true';
}

main();
