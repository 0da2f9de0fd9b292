// Operator console (/console): the queue, the live call (video, map, chat, timer), keyboard
// shortcuts, tabs and the shift. Talks over Socket.IO /console (the staff cookie authenticates)
// and receives the caller's media from the call's media session over WebRTC.
import { CallerMap } from './basemap.js';
import { formatDuration, loadCatalog, t } from './i18n.js';
import { MediaLink } from './media_link.js';
import { connect, newClientId, request } from './socket.js';
import { initThreats } from './console_threats.js';
import { fetchJson, fillCategorySelect, loadCategories } from './threats_common.js';

/** A media link that stops delivering this long is replaced (ICE alone would take ~30 s). */
const MEDIA_STALL_MS = 5000;
/** The caller's media may not have reached the server yet (`no_media`): ask again this often. */
const NO_MEDIA_RETRY_MS = 1500;
/** The citizen's page offers its new media right after reconnecting; look again after this. */
const CITIZEN_BACK_REOFFER_MS = 1500;
const MIC_PROMPT_TIMEOUT_MS = 10_000;
const TITLE_FLASH_MS = 1000;

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const page = {
  shiftButton: $('start-shift'),
  shiftState: $('shift-state'),
  timer: $('call-timer'),
  chatInput: $('chat-input'),
  chatForm: document.getElementById('chat-form'),
  chatLog: $('chat-log'),
  tabs: [...document.querySelectorAll('[role="tab"]')],
  queue: $('queue'),
  queueSize: $('queue-size'),
  queueEmpty: $('queue-empty'),
  accept: $('accept-call'),
  transfer: $('transfer-call'),
  mute: $('mute'),
  snapshot: $('take-snapshot'),
  endCall: $('end-call'),
  callState: $('console-call-state'),
  callInfo: $('call-info'),
  connection: $('connection-state'),
  video: $('remote-video'),
  videoBox: document.querySelector('.video-box'),
  snapshots: $('snapshots'),
  map: $('caller-location'),
  locationText: $('location-text'),
  endDialog: document.getElementById('end-dialog'),
  endForm: document.getElementById('end-form'),
  disposition: $('disposition'),
  endNote: $('end-note'),
  endError: $('end-error'),
  toReport: $('call-to-report'),
  reportDialog: document.getElementById('report-dialog'),
  reportForm: document.getElementById('report-form'),
  reportCategory: $('report-category'),
  reportDescription: $('report-description'),
  reportError: $('report-error'),
};

/** Keys (lower case) to the buttons they press; C focuses the chat instead. */
const SHORTCUTS = {
  a: 'accept-call',
  m: 'mute',
  s: 'take-snapshot',
  e: 'end-call',
};

// Texts of the call status, written out so the catalogue test can find every key.
const CALL_STATE_TEXT = {
  idle: () => t('console.no_call'),
  live: () => t('console.call_live'),
  caller_reconnecting: () => t('console.caller_reconnecting'),
  ended: () => t('console.call_ended'),
  transferred: () => t('console.call_transferred'),
};
const CONNECTION_TEXT = {
  connecting: () => t('console.connecting'),
  connected: () => t('console.connected'),
  reconnecting: () => t('console.reconnecting'),
  refused: () => t('console.session_ended'),
};

const consoleState = { onShift: false, timerStartedMs: 0, timerId: 0 };

/** Everything the live console holds: the queue, the open call, its links. */
const live = {
  /** @type {any} */ socket: null,
  me: '',
  /** @type {RTCIceServer[]} */ iceServers: [],
  /** @type {Map<string, {summary: any, item: HTMLLIElement}>} queued calls by id */
  queue: new Map(),
  selectedId: '',
  /** @type {null | {callId: string, summary: any, lastSeq: number, citizenConnected: boolean, lines: Map<string, HTMLLIElement>}} */
  active: null,
  /** @type {CallerMap | null} */ map: null,
  /** @type {MediaStream | null} */ mic: null,
  micAsked: false,
  muted: false,
  /** @type {AudioContext | null} */ audio: null,
  title: document.title,
  flashTimer: 0,
  waitTimer: 0,
};

/** Hooks between the page's controls and the live console (filled below). */
export const hooks = {
  /** @param {boolean} onShift */
  shiftChanged: (onShift) => console.info('console: on shift', onShift),
  /** @param {string} text */
  sendChat: (text) => console.info('console: chat', text.length),
  /** @param {boolean} muted */
  setMuted: (muted) => console.info('console: muted', muted),
};

/** Starts the call timer from now (or from `startedMs`, for a call answered elsewhere). */
export function startTimer(startedMs = Date.now()) {
  stopTimer();
  consoleState.timerStartedMs = startedMs;
  const tick = () => {
    page.timer.textContent = formatDuration((Date.now() - consoleState.timerStartedMs) / 1000);
  };
  tick();
  consoleState.timerId = window.setInterval(tick, 1000);
}

export function stopTimer() {
  window.clearInterval(consoleState.timerId);
  consoleState.timerId = 0;
}

function renderShift() {
  const on = consoleState.onShift;
  page.shiftButton.setAttribute('aria-pressed', String(on));
  page.shiftButton.textContent = on ? t('console.end_shift') : t('console.start_shift');
  page.shiftState.dataset.state = on ? 'on' : 'off';
  page.shiftState.textContent = on ? t('console.shift_on') : t('console.shift_off');
  document.body.dataset.shift = on ? 'on' : 'off';
}

// --- status lines --------------------------------------------------------------------------

/** @param {keyof CALL_STATE_TEXT} state */
function setCallStatus(state) {
  page.callState.dataset.state = state;
  page.callState.textContent = CALL_STATE_TEXT[state]();
  document.body.dataset.call = state;
  renderButtons();
}

/** @param {keyof CONNECTION_TEXT} state */
function setConnection(state) {
  page.connection.dataset.state = state;
  page.connection.textContent = CONNECTION_TEXT[state]();
  document.body.dataset.connection = state;
}

function renderButtons() {
  const hasCall = Boolean(live.active);
  // During a call, Accept is not a choice: out of the bar, so End call cannot be mistaken for it.
  page.accept.hidden = hasCall;
  page.accept.disabled = hasCall || live.queue.size === 0;
  page.snapshot.disabled = !hasCall || live.active?.summary.mode === 'text';
  page.endCall.disabled = !hasCall;
  page.transfer.disabled = !hasCall;
  page.toReport.disabled = !hasCall;
  page.mute.disabled = !hasCall;
  page.chatInput.disabled = !hasCall;
}

/**
 * A line in the chat log.
 * @param {'operator' | 'citizen' | 'system'} from
 * @param {string} text
 * @param {string} [name]
 */
function appendChat(from, text, name) {
  const item = document.createElement('li');
  item.className = `chat-line chat-${from === 'operator' ? 'me' : from}`;
  const who = document.createElement('span');
  who.className = 'chat-who';
  who.textContent =
    from === 'citizen' ? t('chat.from_caller') : from === 'system' ? t('chat.from_system') : name || live.me;
  const body = document.createElement('span');
  body.className = 'chat-text';
  body.textContent = text;
  item.append(who, body);
  page.chatLog.append(item);
  page.chatLog.scrollTop = page.chatLog.scrollHeight;
  return item;
}

// --- the queue -----------------------------------------------------------------------------

/** @param {number | null | undefined} accuracy */
function metres(accuracy) {
  return Number.isFinite(accuracy) ? String(Math.round(Number(accuracy))) : '?';
}

/** @param {{lat?: number | null, lon?: number | null, accuracy?: number | null}} where */
function placeText(where) {
  if (!Number.isFinite(where.lat) || !Number.isFinite(where.lon)) {
    return t('console.location_unknown');
  }
  return t('console.location_fix', {
    lat: Number(where.lat).toFixed(5),
    lon: Number(where.lon).toFixed(5),
    accuracy: metres(where.accuracy),
  });
}

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
  item.setAttribute('aria-selected', String(summary.call_id === live.selectedId));
}

function tickWaits() {
  const now = Date.now();
  for (const { summary, item } of live.queue.values()) {
    const wait = item.querySelector('.q-wait');
    wait.textContent = formatDuration((now - Date.parse(summary.created_at)) / 1000);
  }
}

function renderQueue() {
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
    renderQueue();
    return false;
  }
  const item = document.createElement('li');
  item.className = 'queue-item';
  item.dataset.testid = 'queue-item';
  item.dataset.callId = summary.call_id;
  item.setAttribute('role', 'option');
  item.tabIndex = 0;
  for (const part of ['q-channel badge', 'q-wait', 'q-lang', 'q-mode', 'q-place']) {
    const span = document.createElement('span');
    span.className = part;
    item.append(span);
  }
  item.addEventListener('click', () => selectQueued(summary.call_id));
  item.addEventListener('dblclick', () => acceptCall(summary.call_id));
  item.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      acceptCall(summary.call_id);
    }
  });
  // Oldest first: the server's order, and new calls arrive last.
  page.queue.append(item);
  live.queue.set(summary.call_id, { summary, item });
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

// --- alert: tone and title -----------------------------------------------------------------

function alertTone() {
  const context = live.audio;
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
  if (live.flashTimer) {
    return;
  }
  let on = false;
  live.flashTimer = window.setInterval(() => {
    on = !on;
    document.title = on ? `(${live.queue.size}) ${t('console.new_call_title')}` : live.title;
  }, TITLE_FLASH_MS);
}

function stopFlash() {
  window.clearInterval(live.flashTimer);
  live.flashTimer = 0;
  document.title = live.title;
}

// --- the open call -------------------------------------------------------------------------

/** @param {string} [callId] the call to take; the selected one, else the oldest */
/** Gives the open call back to its queue: another operator takes it, the caller waits again. */
async function transferCall() {
  const active = live.active;
  if (!active || !live.socket?.connected) {
    return;
  }
  page.transfer.disabled = true;
  try {
    await request(live.socket, 'transfer', { call_id: active.callId });
  } catch (error) {
    appendChat('system', t('console.action_failed', { reason: error.message }));
    renderButtons();
    return;
  }
  closeCall();
  setCallStatus('transferred');
  appendChat('system', t('console.transferred'));
}

async function acceptCall(callId) {
  if (live.active || !live.socket?.connected) {
    return;
  }
  const target = callId || live.selectedId || live.queue.keys().next().value;
  if (!target) {
    return;
  }
  stopFlash();
  page.accept.disabled = true;
  try {
    await request(live.socket, 'accept', { call_id: target });
  } catch (error) {
    removeFromQueue(target);
    if (error.code === 'call_gone') {
      appendChat('system', t('console.call_gone'));
    } else {
      appendChat('system', t('console.action_failed', { reason: error.message }));
    }
    renderButtons();
    return;
  }
  removeFromQueue(target);
  await openCall(target);
}

/**
 * Shows a call this operator holds and catches up on what was said and where the caller went.
 * @param {string} callId
 */
async function openCall(callId) {
  const since = live.active && live.active.callId === callId ? live.active.lastSeq : 0;
  let reply;
  try {
    reply = await request(live.socket, 'join', { call_id: callId, last_seq: since });
  } catch (error) {
    console.warn('console: join failed', error);
    if (live.active?.callId === callId && error.code !== 'timeout') {
      closeCall();
    }
    return;
  }
  const summary = reply.call;
  if (!live.active || live.active.callId !== callId) {
    live.active = { callId, summary, lastSeq: 0, citizenConnected: true, lines: new Map() };
    page.chatLog.replaceChildren();
    page.snapshots.replaceChildren();
    live.map?.clear();
    delete page.map.dataset.located;
    page.map.dataset.lat = '';
    page.map.dataset.lon = '';
    page.map.dataset.accuracy = '';
    page.locationText.textContent = '';
    page.callInfo.textContent = `${t(`channel.${summary.channel}`)} · ${summary.language.toUpperCase()}`;
    page.videoBox.dataset.mode = summary.mode;
    startTimer(summary.answered_at ? Date.parse(summary.answered_at) : Date.now());
    setCallStatus('live');
    live.map?.refresh();
    startMedia();
  } else {
    live.active.summary = summary;
  }
  for (const event of reply.events || []) {
    onCallEvent(event);
  }
}

/** The call is over here: stop media, keep the log on screen until the next call. */
function closeCall() {
  if (!live.active) {
    return;
  }
  live.active = null;
  closePeer();
  page.video.srcObject = null;
  page.videoBox.dataset.live = 'false';
  stopTimer();
  setCallStatus('ended');
  if (page.endDialog.open) {
    page.endDialog.close();
  }
  if (page.reportDialog.open) {
    page.reportDialog.close();
  }
}

/** @param {any} event an event of the open call (live, or caught up by `join`) */
function onCallEvent(event) {
  const active = live.active;
  if (!active || event.call_id !== active.callId) {
    return;
  }
  if (typeof event.seq === 'number') {
    active.lastSeq = Math.max(active.lastSeq, event.seq);
  }
  if (event.type === 'chat.message') {
    let line = active.lines.get(event.client_id);
    if (!line) {
      line = appendChat(event.sender, event.body, event.sender_name);
      active.lines.set(event.client_id, line);
    }
    line.dataset.status = 'sent';
  } else if (event.type === 'call.photo') {
    const key = `photo:${event.seq}`;
    if (!active.lines.has(key)) {
      const line = appendChat('citizen', t('chat.photo'));
      const link = document.createElement('a');
      link.href = event.url;
      link.target = '_blank';
      link.rel = 'noopener';
      const image = document.createElement('img');
      image.className = 'chat-photo';
      image.alt = t('chat.photo');
      image.src = event.url;
      image.dataset.testid = 'chat-photo';
      link.append(image);
      line.append(link);
      active.lines.set(key, line);
    }
  } else if (event.type === 'location') {
    showLocation(event);
  } else if (event.type === 'call.state') {
    if (event.state !== 'answered') {
      closeCall();
    }
  } else if (event.type === 'media.lost') {
    // The call's media node is gone; the caller's page offers again at once. Follow it (a
    // "no media yet" answer retries shortly).
    startMedia();
  } else if (event.type === 'call.citizen') {
    active.citizenConnected = event.connected;
    setCallStatus(event.connected ? 'live' : 'caller_reconnecting');
    if (event.connected && active.summary.mode !== 'text') {
      // The caller's page made a new peer connection: subscribe to its new tracks.
      window.setTimeout(() => {
        if (live.active === active) {
          startMedia();
        }
      }, CITIZEN_BACK_REOFFER_MS);
    }
  }
}

/** @param {{lat: number, lon: number, accuracy: number | null}} fix */
function showLocation(fix) {
  page.map.dataset.lat = String(fix.lat);
  page.map.dataset.lon = String(fix.lon);
  page.map.dataset.accuracy = fix.accuracy == null ? '' : String(fix.accuracy);
  page.map.dataset.located = 'true';
  page.locationText.textContent = placeText(fix);
  live.map?.show(fix);
}

// --- media ---------------------------------------------------------------------------------

/** The operator's microphone, asked once; without it the operator still sees and hears. */
async function microphone() {
  if (live.mic || live.micAsked) {
    return live.mic;
  }
  live.micAsked = true;
  try {
    const stream = await Promise.race([
      navigator.mediaDevices.getUserMedia({ audio: true }),
      new Promise((_, reject) =>
        window.setTimeout(() => reject(new Error('timeout')), MIC_PROMPT_TIMEOUT_MS),
      ),
    ]);
    live.mic = /** @type {MediaStream} */ (stream);
    live.mic.getAudioTracks().forEach((track) => {
      track.enabled = !live.muted;
    });
  } catch (error) {
    console.warn('console: no microphone', error);
    appendChat('system', t('console.no_microphone'));
  }
  return live.mic;
}

/**
 * What the next offer needs: the open call's video from the caller, audio both ways (the
 * microphone asked on the first one). Nothing without a call, for a text call, or offline.
 * @returns {Promise<import('./media_link.js').MediaPlan | null>}
 */
async function mediaPlan() {
  const active = live.active;
  if (!active || active.summary.mode === 'text' || !live.socket?.connected) {
    return null;
  }
  const mic = await microphone();
  const remote = new MediaStream();
  return {
    iceServers: live.iceServers || [],
    setup: (peer) => {
      peer.addTransceiver('video', { direction: 'recvonly' });
      const track = mic && mic.getAudioTracks()[0];
      if (track) {
        peer.addTransceiver(track, { direction: 'sendrecv', streams: [mic] });
      } else {
        peer.addTransceiver('audio', { direction: 'recvonly' });
      }
    },
    sendOffer: (offer) => request(live.socket, 'media_offer', { call_id: active.callId, ...offer }),
    sendIce: (candidate) => request(live.socket, 'media_ice', { call_id: active.callId, ...candidate }),
    onTrack: (event) => {
      remote.addTrack(event.track);
      page.video.srcObject = remote;
      page.video.play().catch(() => {});
    },
    onFailure: (error, current) => {
      if (current && error.code !== 'no_media') {
        console.warn('console: media offer failed', error);
      }
    },
  };
}

/** The open call's media: renewed on a failed or stalled link, on media.lost, when the caller is back. */
const media = new MediaLink({
  plan: mediaPlan,
  retryMs: { no_media: NO_MEDIA_RETRY_MS },
  stallMs: MEDIA_STALL_MS,
  onState: (state) => {
    page.videoBox.dataset.media = state;
  },
});

function startMedia() {
  media.start();
}

function closePeer() {
  media.close();
}

// --- operator actions ----------------------------------------------------------------------

async function sendChat(text) {
  const active = live.active;
  if (!active) {
    return;
  }
  const clientId = newClientId();
  const line = appendChat('operator', text);
  line.dataset.status = 'sending';
  active.lines.set(clientId, line);
  const payload = { call_id: active.callId, client_id: clientId, body: text };
  // Resent with the same id after a reconnect: the server stores it once.
  for (;;) {
    try {
      await request(live.socket, 'chat', payload);
      line.dataset.status = 'sent';
      return;
    } catch (error) {
      if (error.code !== 'timeout' || live.active !== active) {
        line.dataset.status = 'failed';
        appendChat('system', t('console.action_failed', { reason: error.message }));
        return;
      }
      await new Promise((resolve) => live.socket.once('connect', resolve));
    }
  }
}

async function takeSnapshot() {
  const active = live.active;
  if (!active) {
    return;
  }
  let reply;
  try {
    reply = await request(live.socket, 'snapshot', { call_id: active.callId });
  } catch (error) {
    appendChat(
      'system',
      error.code === 'no_video' ? t('console.snapshot_no_video') : t('console.action_failed', { reason: error.message }),
    );
    return;
  }
  const item = document.createElement('li');
  item.className = 'snapshot';
  item.dataset.sha256 = reply.sha256;
  const saved = t('console.snapshot_saved', { hash: reply.sha256.slice(0, 12) });
  const image = document.createElement('img');
  image.alt = saved;
  image.title = saved;
  image.addEventListener('error', () => {
    // The image route may not exist yet: the snapshot is stored all the same.
    const label = document.createElement('span');
    label.className = 'snapshot-label';
    label.textContent = saved;
    image.replaceWith(label);
  });
  image.src = reply.url;
  item.append(image);
  page.snapshots.prepend(item);
}

function openEndDialog() {
  if (!live.active || page.endDialog.open) {
    return;
  }
  page.endError.hidden = true;
  page.endDialog.showModal();
  page.disposition.focus();
}

async function confirmEnd() {
  const active = live.active;
  if (!active) {
    page.endDialog.close();
    return;
  }
  const disposition = page.disposition.value;
  if (!disposition) {
    page.endError.textContent = t('console.disposition_required');
    page.endError.hidden = false;
    page.disposition.focus();
    return;
  }
  try {
    await request(live.socket, 'end_call', {
      call_id: active.callId,
      disposition,
      note: page.endNote.value.trim(),
    });
  } catch (error) {
    page.endError.textContent = t('console.action_failed', { reason: error.message });
    page.endError.hidden = false;
    return;
  }
  page.disposition.value = '';
  page.endNote.value = '';
  closeCall();
}

// --- a threat report from the call --------------------------------------------------------

async function openReportDialog() {
  if (!live.active || page.reportDialog.open) {
    return;
  }
  page.reportError.hidden = true;
  page.reportDialog.showModal();
  fillCategorySelect(page.reportCategory, await loadCategories([]));
  page.reportCategory.focus();
}

/** @param {string} text */
function reportError(text) {
  page.reportError.textContent = text;
  page.reportError.hidden = false;
}

async function confirmReport() {
  const active = live.active;
  const category = page.reportCategory.value;
  if (!active) {
    page.reportDialog.close();
    return;
  }
  if (!category) {
    reportError(t('console.report_category_required'));
    page.reportCategory.focus();
    return;
  }
  const csrf = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name="csrf_token"]'));
  let report;
  try {
    report = await fetchJson(`/api/staff/reports/from-call/${encodeURIComponent(active.callId)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf ? csrf.value : '' },
      body: JSON.stringify({ category, description: page.reportDescription.value.trim() }),
    });
  } catch (error) {
    reportError(t('console.report_failed', { reason: error.message }));
    return;
  }
  page.reportCategory.value = '';
  page.reportDescription.value = '';
  page.reportDialog.close();
  const line = appendChat('system', t('console.report_created', { id: report.id }));
  line.dataset.testid = 'call-report-created';
  line.dataset.reportId = String(report.id);
}

// --- the socket ----------------------------------------------------------------------------

async function refreshQueue() {
  let reply;
  try {
    reply = await request(live.socket, 'queue', {});
  } catch (error) {
    console.warn('console: queue', error);
    return;
  }
  live.me = reply.me;
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
  renderQueue();
  // After a reload or a reconnect: the call this operator holds, caught up from the last seq.
  const open = live.active ? live.active.callId : mine && mine.call_id;
  if (open) {
    await openCall(open);
  }
}

async function loadIceServers() {
  try {
    const response = await fetch('/api/ice-servers', { credentials: 'same-origin' });
    if (response.ok) {
      live.iceServers = (await response.json()).ice_servers || [];
    }
  } catch (error) {
    console.warn('console: ice servers', error);
  }
}

function openSocket() {
  const socket = connect('/console');
  live.socket = socket;
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
    if (event.type === 'queue.call_added') {
      if (addToQueue(event.call)) {
        alertTone();
        flashTitle();
      }
    } else if (event.type === 'queue.call_removed') {
      removeFromQueue(event.call_id);
    } else if (event.type === 'location' && live.queue.has(event.call_id)) {
      const entry = live.queue.get(event.call_id);
      Object.assign(entry.summary, { lat: event.lat, lon: event.lon, accuracy: event.accuracy });
      renderQueueItem(entry);
      onCallEvent(event);
    } else {
      onCallEvent(event);
    }
  });
}

// --- keyboard, tabs, controls --------------------------------------------------------------

/** Typing in a field must never trigger a shortcut. */
function isTyping(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))
  );
}

function onKeyDown(event) {
  if (event.key === 'Escape') {
    const dialog = document.querySelector('dialog[open]');
    if (dialog) {
      dialog.close();
      event.preventDefault();
    } else if (isTyping(event.target)) {
      event.target.blur();
    }
    return;
  }
  if (
    event.ctrlKey ||
    event.metaKey ||
    event.altKey ||
    event.repeat ||
    isTyping(event.target) ||
    document.querySelector('dialog[open]')
  ) {
    return;
  }
  const key = event.key.toLowerCase();
  if (key === 'c') {
    event.preventDefault();
    page.chatInput.focus();
    return;
  }
  const testid = SHORTCUTS[key];
  const button = testid && $(testid);
  if (button && !button.disabled && !button.closest('[hidden]')) {
    event.preventDefault();
    button.focus();
    button.click();
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
  document.addEventListener('keydown', onKeyDown);
  page.shiftButton.addEventListener('click', () => {
    // Browsers only let a page play sound after a user gesture: this click is that gesture.
    consoleState.onShift = !consoleState.onShift;
    renderShift();
    hooks.shiftChanged(consoleState.onShift);
  });
  page.mute.addEventListener('click', () => {
    const muted = page.mute.getAttribute('aria-pressed') !== 'true';
    page.mute.setAttribute('aria-pressed', String(muted));
    page.mute.textContent = muted ? t('console.unmute') : t('console.mute');
    hooks.setMuted(muted);
  });
  page.accept.addEventListener('click', () => acceptCall());
  page.transfer.addEventListener('click', () => transferCall());
  page.snapshot.addEventListener('click', () => takeSnapshot());
  page.endCall.addEventListener('click', () => openEndDialog());
  page.endForm.addEventListener('submit', (event) => {
    event.preventDefault();
    confirmEnd();
  });
  $('end-cancel').addEventListener('click', () => page.endDialog.close());
  page.toReport.addEventListener('click', () => openReportDialog());
  page.reportForm.addEventListener('submit', (event) => {
    event.preventDefault();
    confirmReport();
  });
  $('report-cancel').addEventListener('click', () => page.reportDialog.close());
  page.video.addEventListener('playing', () => {
    page.videoBox.dataset.live = 'true';
  });
  page.tabs.forEach((tab, index) => {
    tab.addEventListener('click', () => selectTab(tab));
    tab.addEventListener('keydown', (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) {
        selectTab(page.tabs[(index + step + page.tabs.length) % page.tabs.length]);
      }
    });
  });
  page.chatForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = page.chatInput.value.trim();
    if (text) {
      page.chatInput.value = '';
      hooks.sendChat(text);
    }
  });
  window.addEventListener('focus', stopFlash);
}

Object.assign(hooks, {
  shiftChanged: (onShift) => {
    if (onShift) {
      live.audio = live.audio || new AudioContext();
      live.audio.resume().catch(() => {});
    }
  },
  sendChat,
  setMuted: (muted) => {
    live.muted = muted;
    live.mic?.getAudioTracks().forEach((track) => {
      track.enabled = !muted;
    });
  },
});

async function main() {
  bind();
  await loadCatalog(document.documentElement.lang);
  renderShift();
  setCallStatus('idle');
  setConnection('connecting');
  renderQueue();
  live.waitTimer = window.setInterval(tickWaits, 1000);
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
