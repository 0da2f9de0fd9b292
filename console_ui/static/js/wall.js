// Supervisor wall (/wall): the live queue of the channels this role may see, from the same
// /console socket the operators use (the server filters channels by role), with wait times that
// tick, and the operators' states (asked every few seconds). The SLA figure needs answer-time
// statistics the server does not send yet: it shows a dash rather than a made-up number.
import { formatDuration, loadCatalog, t } from './i18n.js';
import { connect, followSessionEnd, request } from './socket.js';

const clock = document.querySelector('[data-testid="wall-clock"]');
const grid = document.querySelector('[data-testid="wall-calls"]');
const operatorList = document.querySelector('[data-testid="operators"]');
const OPERATORS_EVERY_MS = 5000;
/** @type {{username: string, state: string}[] | null} */
let operators = null;
/** @type {Map<string, {call_id: string, channel: string, state: string, created_at: string, answered_at: string | null, operator: string | null, language: string}>} */
const calls = new Map();

function tickClock() {
  clock.textContent = new Date().toLocaleTimeString(document.documentElement.lang, {
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  });
}

/** Seconds since an ISO time. @param {string} iso */
function since(iso) {
  return Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
}

/**
 * Updates one channel's figures.
 * @param {string} channel
 * @param {{waiting: number, longestWaitSecs: number, slaPercent: number | null, operatorsAvailable: number | null}} figures
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
  set('operators-available', figures.operatorsAvailable === null ? '–' : String(figures.operatorsAvailable));
}

function render() {
  for (const element of document.querySelectorAll('[data-testid="queue-count"]')) {
    const channel = element.dataset.channel;
    const waiting = [...calls.values()].filter((c) => c.channel === channel && c.state === 'queued');
    renderQueue(channel, {
      waiting: waiting.length,
      longestWaitSecs: Math.max(0, ...waiting.map((c) => since(c.created_at))),
      slaPercent: null,
      operatorsAvailable: operators === null ? null : operators.filter((o) => o.state === 'available').length,
    });
  }
  // Marked calls (a flooding page, say) after the others, as on the consoles.
  const marked = (call) => ((call.marks || []).length > 0 ? 1 : 0);
  const ordered = [...calls.values()].sort(
    (a, b) => marked(a) - marked(b) || Date.parse(a.created_at) - Date.parse(b.created_at),
  );
  grid.replaceChildren(
    ...ordered.map((call) => {
      const item = document.createElement('li');
      item.className = `wall-call wall-call-${call.state}`;
      item.dataset.testid = 'wall-call';
      item.dataset.callId = call.call_id;
      item.dataset.state = call.state;
      const title = document.createElement('strong');
      title.textContent = `${t(`channel.${call.channel}`)} · ${call.language.toUpperCase()}`;
      const state = document.createElement('span');
      state.textContent = call.state === 'queued' ? t('wall.waiting') : t('wall.in_call');
      const time = document.createElement('span');
      time.className = 'wall-call-time';
      time.textContent = formatDuration(since(call.answered_at || call.created_at));
      const who = document.createElement('span');
      who.textContent = call.operator || '';
      item.append(title, state, time, who);
      const marks = call.marks || [];
      item.dataset.marks = marks.join(' ');
      if (marks.length > 0) {
        const mark = document.createElement('span');
        mark.className = 'badge wall-call-marks';
        mark.dataset.testid = 'wall-call-marks';
        mark.textContent = marks.map((m) => t(`call.mark.${m}`)).join(' · ');
        item.append(mark);
      }
      return item;
    }),
  );
}

function renderOperators() {
  if (operators === null) {
    return;
  }
  operatorList.replaceChildren(
    ...operators.map((operator) => {
      const item = document.createElement('li');
      item.className = `operator operator-${operator.state}`;
      item.dataset.testid = 'operator-state';
      item.dataset.user = operator.username;
      item.dataset.state = operator.state;
      const name = document.createElement('strong');
      name.textContent = operator.username;
      const state = document.createElement('span');
      state.textContent = t(`wall.operator.${operator.state}`);
      item.append(name, state);
      return item;
    }),
  );
}

/** @param {any} socket */
async function refreshOperators(socket) {
  if (!socket.connected) {
    return;
  }
  try {
    operators = (await request(socket, 'operators', {})).operators;
    renderOperators();
    render();
  } catch (error) {
    console.warn('wall: operator states unavailable', error);
  }
}

/** @param {any} event */
function onEvent(event) {
  if (!event) {
    return;
  }
  if (event.type === 'queue.call_added' || event.type === 'queue.call_updated') {
    calls.set(event.call.call_id, event.call);
  } else if (event.type === 'queue.call_removed') {
    const call = calls.get(event.call_id);
    if (call && event.reason === 'answered') {
      call.state = 'answered';
      call.operator = event.by || null;
      call.answered_at = new Date().toISOString();
    } else {
      calls.delete(event.call_id);
    }
  }
  render();
}

async function main() {
  tickClock();
  window.setInterval(tickClock, 15_000);
  await loadCatalog(document.documentElement.lang);
  const socket = connect('/console');
  followSessionEnd(socket);
  socket.on('event', (event) => {
    onEvent(event);
    if (event && event.type && event.type.startsWith('queue.')) {
      refreshOperators(socket); // an answer or a hang-up changes someone's state
    }
  });
  window.setInterval(() => refreshOperators(socket), OPERATORS_EVERY_MS);
  socket.on('connect', async () => {
    // Every (re)connect starts from the server's view: events missed while away are not replayed.
    try {
      const reply = await request(socket, 'queue', {});
      calls.clear();
      for (const call of reply.calls) {
        calls.set(call.call_id, call);
      }
      render();
      await refreshOperators(socket);
      document.body.dataset.live = 'true';
    } catch (error) {
      console.warn('wall: queue unavailable', error);
    }
  });
  socket.on('disconnect', () => {
    document.body.dataset.live = 'false';
  });
  window.setInterval(render, 1000);
  document.body.dataset.ready = 'true';
}

main();
