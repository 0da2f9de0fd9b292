// The console's queue: the calls waiting, oldest first, how long each has waited, where it is;
// accepting one (the selected, else the oldest); a tone and a flashing title for a new call.
import { openCall } from './console_call.js';
import { appendChat, errorText, live, page, placeText, renderButtons } from './console_page.js';
import { formatDuration, t } from './i18n.js';
import { showNotRecording } from './recording_state.js';
import { showCallRecording } from './console_recording.js';
import { request } from './socket.js';

const TITLE_FLASH_MS = 1000;

/** @type {AudioContext | null} made on the first start of a shift (a user gesture) */
let audio = null;
const title = document.title;
let flashTimer = 0;
/**
 * Queue events that arrive while a `queue` request is out: its answer may have been computed
 * before them (a call added meanwhile would vanish, one taken meanwhile come back), so they are
 * applied again, in order, on top of it.
 * @type {any[] | null}
 */
let duringRefresh = null;
/** @type {any[]} the calls of the last `queue` answer (routing looks for one ringing me) */
export let lastCalls = [];

/** @param {any} summary */
function renderQueueItem(entry) {
  const { summary, item } = entry;
  item.dataset.channel = summary.channel;
  item.dataset.language = summary.language;
  item.querySelector('.q-channel').textContent = t(`channel.${summary.channel}`);
  item.querySelector('.q-lang').textContent = summary.language.toUpperCase();
  item.querySelector('.q-mode').textContent =
    summary.mode === 'text' ? t('console.mode_text') : t('console.mode_video');
  item.querySelector('.q-place').textContent = placeText(summary);
  // A call handed on and not taken comes back with its first operator's note.
  const note = item.querySelector('.q-note');
  note.hidden = !summary.transfer_note;
  note.textContent = summary.transfer_note ? t('transfer.queue_note', { note: summary.transfer_note }) : '';
  const situation = item.querySelector('.q-situation');
  item.dataset.situation = summary.situation || '';
  situation.hidden = !summary.situation;
  situation.textContent = summary.situation ? t(`situation.${summary.situation}`) : '';
  showNotRecording(item.querySelector('.q-rec'), summary);
  const marks = summary.marks || [];
  item.dataset.marks = marks.join(' ');
  const mark = item.querySelector('.q-marks');
  mark.hidden = marks.length === 0;
  mark.textContent = marks.map((m) => t(`call.mark.${m}`)).join(' · ');
  const rings = item.querySelector('.q-ringing');
  item.dataset.ringing = summary.ringing || '';
  rings.hidden = !summary.ringing;
  const mine = summary.ringing && summary.ringing === live.me;
  rings.textContent = !summary.ringing
    ? ''
    : mine
      ? t('console.ringing_you')
      : t('console.ringing_other', { operator: summary.ringing });
  item.setAttribute('aria-selected', String(summary.call_id === live.selectedId));
}

/**
 * Unmarked calls first, each group oldest first (the server's order): a call the system marked
 * (a flooding page, say) waits behind the others, still in the list, for a person to judge.
 */
function orderQueue() {
  const entries = [...live.queue.values()];
  const marked = (entry) => (entry.summary.marks || []).length > 0;
  const ordered = [...entries.filter((e) => !marked(e)), ...entries.filter(marked)];
  live.queue.clear();
  for (const entry of ordered) {
    live.queue.set(entry.summary.call_id, entry);
    page.queue.append(entry.item);
  }
}

function tickWaits() {
  const now = Date.now();
  for (const { summary, item } of live.queue.values()) {
    const wait = item.querySelector('.q-wait');
    wait.textContent = formatDuration((now - Date.parse(summary.created_at)) / 1000);
  }
}

export function renderQueue() {
  page.queueSize.textContent = String(live.queue.size);
  page.queueEmpty.hidden = live.queue.size > 0;
  if (live.selectedId && !live.queue.has(live.selectedId)) {
    live.selectedId = '';
  }
  for (const entry of live.queue.values()) {
    renderQueueItem(entry);
  }
  tickWaits();
  renderButtons();
  if (live.queue.size === 0) {
    stopFlash();
  }
}

/** @param {any} summary */
function addToQueue(summary) {
  if (summary.state !== 'queued') {
    return false;
  }
  const existing = live.queue.get(summary.call_id);
  if (existing) {
    existing.summary = { ...existing.summary, ...summary };
    orderQueue();
    renderQueue();
    return false;
  }
  const item = document.createElement('li');
  item.className = 'queue-item';
  item.dataset.testid = 'queue-item';
  item.dataset.callId = summary.call_id;
  item.setAttribute('role', 'option');
  item.tabIndex = 0;
  const parts = ['q-channel badge', 'q-situation badge', 'q-wait', 'q-lang', 'q-mode', 'q-place', 'q-marks badge', 'q-rec badge', 'q-note', 'q-ringing'];
  for (const part of parts) {
    const span = document.createElement('span');
    span.className = part;
    item.append(span);
  }
  item.querySelector('.q-marks').dataset.testid = 'queue-item-marks';
  item.querySelector('.q-situation').dataset.testid = 'queue-item-situation';
  item.querySelector('.q-note').dataset.testid = 'queue-item-note';
  item.querySelector('.q-rec').dataset.testid = 'queue-item-not-recording';
  item.addEventListener('click', () => selectQueued(summary.call_id));
  item.addEventListener('dblclick', () => acceptCall(summary.call_id));
  item.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      acceptCall(summary.call_id);
    }
  });
  // Oldest first: the server's order, and new calls arrive last (before any marked one).
  page.queue.append(item);
  live.queue.set(summary.call_id, { summary, item });
  orderQueue();
  renderQueue();
  return true;
}

/** @param {string} callId */
function removeFromQueue(callId) {
  const entry = live.queue.get(callId);
  if (entry) {
    entry.item.remove();
    live.queue.delete(callId);
    renderQueue();
  }
}

/** @param {string} callId */
function selectQueued(callId) {
  live.selectedId = callId;
  renderQueue();
}

/**
 * A queue event from the socket: true when it was only the queue's. A location is also the open
 * call's (the caller's map), so the caller hands it on.
 * @param {any} event
 */
export function onQueueEvent(event) {
  if (duringRefresh && event.type.startsWith('queue.')) {
    duringRefresh.push(event);
  }
  if (event.type === 'queue.call_added') {
    if (addToQueue(event.call)) {
      alertTone();
      flashTitle();
    }
    return true;
  }
  if (event.type === 'queue.call_updated') {
    showCallRecording(event.call);
    if (!addToQueue(event.call)) {
      openInvited(event.call);
    }
    return true;
  }
  if (event.type === 'queue.call_removed') {
    removeFromQueue(event.call_id);
    return true;
  }
  if (event.type === 'location' && live.queue.has(event.call_id)) {
    const entry = live.queue.get(event.call_id);
    Object.assign(entry.summary, { lat: event.lat, lon: event.lon, accuracy: event.accuracy });
    renderQueueItem(entry);
  }
  return false;
}

/**
 * A caller this operator invited has opened the link: their call comes answered by this
 * operator. Open it, unless another call is open here (then it waits, and is said).
 * @param {any} summary
 */
function openInvited(summary) {
  if (summary.state !== 'answered' || summary.operator !== live.me || !live.me) {
    return;
  }
  if (live.active) {
    if (live.active.callId !== summary.call_id) {
      // Said once: the same call is updated again later (its recording, its media).
      const known = live.waitingInvite?.call_id === summary.call_id;
      live.waitingInvite = summary;
      if (!known) {
        appendChat('system', t('invite.joined_while_busy'));
      }
    }
    return;
  }
  alertTone();
  openCall(summary.call_id, summary);
}

/** The call on screen has closed: an invited caller who joined meanwhile comes next. */
export function openWaitingInvite() {
  const waiting = live.waitingInvite;
  live.waitingInvite = null;
  if (waiting && !live.active) {
    openInvited(waiting);
  }
}

export async function refreshQueue() {
  let reply;
  const seen = [];
  duringRefresh = seen;
  try {
    reply = await request(live.socket, 'queue', {});
  } catch (error) {
    console.warn('console: queue', error);
    return;
  } finally {
    if (duringRefresh === seen) {
      duringRefresh = null;
    }
  }
  live.me = reply.me;
  lastCalls = reply.calls;
  for (const { item } of live.queue.values()) {
    item.remove();
  }
  live.queue.clear();
  let mine = null;
  for (const summary of reply.calls) {
    if (summary.state === 'queued') {
      addToQueue(summary);
    } else if (summary.state === 'answered' && summary.operator === live.me) {
      mine = mine || summary;
    }
  }
  for (const event of seen) {
    if (event.type === 'queue.call_removed') {
      removeFromQueue(event.call_id);
    } else {
      addToQueue(event.call);
    }
  }
  renderQueue();
  // After a reload or a reconnect: the call this operator holds, caught up from the last seq.
  const open = live.active ? live.active.callId : mine && mine.call_id;
  if (open) {
    await openCall(open);
  }
}

// --- accept --------------------------------------------------------------------------------

/**
 * @param {string} [callId] the call to take; the one ringing this operator, else the selected
 * one, else the first in the list
 */
export async function acceptCall(callId) {
  if (live.active || !live.socket?.connected) {
    return;
  }
  const target = callId || live.ringing || live.selectedId || live.queue.keys().next().value;
  if (!target) {
    return;
  }
  stopFlash();
  page.accept.disabled = true;
  let reply;
  try {
    reply = await request(live.socket, 'accept', { call_id: target });
  } catch (error) {
    if (error.code === 'call_ringing_elsewhere') {
      // Still waiting, for the operator it rings: it stays in the list.
      appendChat('system', t('console.ringing_elsewhere'));
      renderButtons();
      return;
    }
    removeFromQueue(target);
    if (error.code === 'call_gone') {
      appendChat('system', t('console.call_gone'));
    } else {
      appendChat('system', errorText(error));
    }
    renderButtons();
    return;
  }
  removeFromQueue(target);
  // The accept's answer is enough to open the call and start its media; the join that follows
  // catches up on what was said meanwhile.
  await openCall(target, reply.call);
}

// --- alert: tone and title -----------------------------------------------------------------

/** Sound for new calls: browsers only let a page play it after a user gesture (Start shift). */
export function allowSound() {
  audio = audio || new AudioContext();
  audio.resume().catch(() => {});
}

export function alertTone() {
  const context = audio;
  if (!context || context.state !== 'running') {
    return;
  }
  const start = context.currentTime;
  for (const offset of [0, 0.25]) {
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    oscillator.type = 'sine';
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.18);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(start + offset);
    oscillator.stop(start + offset + 0.2);
  }
}

function flashTitle() {
  if (flashTimer) {
    return;
  }
  let on = false;
  flashTimer = window.setInterval(() => {
    on = !on;
    document.title = on ? `(${live.queue.size}) ${t('console.new_call_title')}` : title;
  }, TITLE_FLASH_MS);
}

function stopFlash() {
  window.clearInterval(flashTimer);
  flashTimer = 0;
  document.title = title;
}

/** Wires the queue's controls and starts the wait times ticking. */
export function bindQueue() {
  page.accept.addEventListener('click', () => acceptCall());
  window.addEventListener('focus', stopFlash);
}

export function startWaitTimes() {
  window.setInterval(tickWaits, 1000);
}
