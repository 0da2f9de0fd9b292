// The operator console's page: its elements, what the modules share (the socket, the queue,
// the open call), the status lines, the buttons' states and the chat log.
import { t } from './i18n.js';

export const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

export const page = {
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
  leave: $('leave-call'),
  mute: $('mute'),
  snapshot: $('take-snapshot'),
  endCall: $('end-call'),
  callState: $('console-call-state'),
  callInfo: $('call-info'),
  verification: $('verification-box'),
  verificationCode: $('verification-code'),
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

/** What the console's modules share: the socket, the queue, the open call, the map. */
export const live = {
  /** @type {any} */ socket: null,
  me: '',
  /** @type {Map<string, {summary: any, item: HTMLLIElement}>} queued calls by id */
  queue: new Map(),
  selectedId: '',
  /** the queued call ringing this operator now ('' none: console_routing.js) */
  ringing: '',
  /** @type {null | {callId: string, summary: any, lastSeq: number, citizenConnected: boolean, lines: Map<string, HTMLLIElement>, placeSeq: number, guest?: boolean}} */
  active: null,
  /** @type {import('./basemap.js').CallerMap | null} */ map: null,
  /** @type {any} an invited caller's call that joined while another call was open here */
  waitingInvite: null,
  /** A warm transfer or conference of the open call is under way (console_transfer.js). */
  handingOn: false,
};

// Refusals the operator can act on, in their words; the server's own message (English) only
// for the rare others, behind a translated "Not done".
const ERROR_TEXT = {
  timeout: () => t('console.error.timeout'),
  rate_limited: () => t('console.error.rate_limited'),
  call_not_live: () => t('console.error.call_not_live'),
  call_changed: () => t('console.error.call_changed'),
  role_forbidden: () => t('console.error.role_forbidden'),
  session_expired: () => t('console.session_ended'),
};

/**
 * What a refused or unanswered request says to the operator.
 * @param {{code?: string, message?: string}} error a RequestError
 */
export function errorText(error) {
  const known = error && Object.hasOwn(ERROR_TEXT, error.code) ? ERROR_TEXT[error.code] : null;
  return known ? known() : t('console.action_failed', { reason: (error && error.message) || '' });
}

// --- status lines --------------------------------------------------------------------------

/** @param {keyof CALL_STATE_TEXT} state */
export function setCallStatus(state) {
  page.callState.dataset.state = state;
  page.callState.textContent = CALL_STATE_TEXT[state]();
  document.body.dataset.call = state;
  renderButtons();
}

/** @param {keyof CONNECTION_TEXT} state */
/**
 * The database banner: shown while this node says it works without its database.
 * @param {string[]} stores what the node works without (`node.degraded`)
 */
export function setDegraded(stores) {
  $('degraded-banner').hidden = !stores.includes('database');
}

export function setConnection(state) {
  page.connection.dataset.state = state;
  page.connection.textContent = CONNECTION_TEXT[state]();
  document.body.dataset.connection = state;
}

export function renderButtons() {
  const hasCall = Boolean(live.active);
  // During a call, Accept is not a choice: out of the bar, so End call cannot be mistaken for it.
  page.accept.hidden = hasCall;
  page.accept.disabled = hasCall || live.queue.size === 0;
  page.snapshot.disabled = !hasCall || live.active?.summary.mode === 'text';
  // A warm transfer's target or a conference's guest is on the call, not its operator: they
  // leave it; ending and handing it on are the operator's.
  const guest = Boolean(live.active?.guest);
  page.endCall.disabled = !hasCall || guest;
  page.transfer.disabled = !hasCall || guest || live.handingOn;
  page.leave.hidden = !guest;
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
export function appendChat(from, text, name) {
  const item = document.createElement('li');
  // Another operator's line (a transfer or a conference puts two in one chat) is not "me".
  const mine = from === 'operator' && (!name || name === live.me);
  item.className = `chat-line chat-${mine ? 'me' : from === 'operator' ? 'colleague' : from}`;
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

// --- places --------------------------------------------------------------------------------

/** @param {number | null | undefined} accuracy */
function metres(accuracy) {
  return Number.isFinite(accuracy) ? String(Math.round(Number(accuracy))) : '?';
}

/** @param {{lat?: number | null, lon?: number | null, accuracy?: number | null}} where */
export function placeText(where) {
  if (!Number.isFinite(where.lat) || !Number.isFinite(where.lon)) {
    return t('console.location_unknown');
  }
  return t('console.location_fix', {
    lat: Number(where.lat).toFixed(5),
    lon: Number(where.lon).toFixed(5),
    accuracy: metres(where.accuracy),
  });
}
