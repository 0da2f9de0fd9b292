// The operator's own state and the calls that ring them (automatic distribution, docs/routing.md):
// the state control (Ready R, Step away W, with an optional reason), and the ring: a loud panel
// with the caller's language and wait, Accept (A, or Enter on the focused button) and Decline
// (D). The server decides who rings; this page only shows it and answers.
import { $, appendChat, errorText, live } from './console_page.js';
import { acceptCall, alertTone } from './console_queue.js';
import { formatDuration, t } from './i18n.js';
import { request } from './socket.js';

const RING_TONE_MS = 1500;

const panel = $('ring-panel');
const statusForm = $('operator-status');
const statusText = $('operator-status-text');
const awayReason = $('away-reason');
const readyButton = $('status-ready');
const awayButton = $('status-away');

/** @type {any} the operator's state as the server last said it */
let status = null;
/** @type {any} the queued call that rings this operator, if any */
let ringing = null;
let toneTimer = 0;
/** the ring's length as first seen: the bar shows what is left of it */
let ringSecs = 0;
let asked = false;

// Texts of each state, written out so the catalogue test can find every key.
const STATE_TEXT = {
  available: () => t('console.status.available'),
  ringing: () => t('console.status.ringing'),
  in_call: () => t('console.status.in_call'),
  wrap_up: () => t('console.status.wrap_up', { time: formatDuration(secondsUntil(status?.until)) }),
  away: () => t('console.status.away'),
  offline: () => t('console.status.offline'),
};

function secondsUntil(moment) {
  return moment ? (Date.parse(moment) - Date.now()) / 1000 : 0;
}

function renderStatus() {
  const state = status ? status.state : 'offline';
  statusForm.dataset.state = state;
  const note = state === 'away' && status.note ? ` · ${status.note}` : '';
  statusText.textContent = `${(STATE_TEXT[state] || STATE_TEXT.offline)()}${note}`;
  // Ready ends a wrap-up or an absence; away is offered whenever the operator is not already.
  readyButton.disabled = !['away', 'wrap_up'].includes(state);
  awayButton.disabled = ['away', 'in_call', 'offline'].includes(state);
  awayReason.hidden = awayButton.disabled;
}

function renderRing() {
  const call = ringing;
  panel.hidden = !call;
  document.body.dataset.ringing = call ? 'true' : 'false';
  if (!call) {
    ringSecs = 0;
    panel.dataset.callId = '';
    live.ringing = '';
    window.clearInterval(toneTimer);
    toneTimer = 0;
    return;
  }
  panel.dataset.callId = call.call_id;
  live.ringing = call.call_id;
  $('ring-language').textContent = call.language.toUpperCase();
  tickRing();
  if (!toneTimer) {
    alertTone();
    toneTimer = window.setInterval(alertTone, RING_TONE_MS);
  }
  const typing = document.activeElement instanceof HTMLInputElement || document.activeElement instanceof HTMLTextAreaElement;
  if (!typing) {
    $('ring-accept').focus(); // Enter answers
  }
}

function tickRing() {
  if (ringing) {
    const waited = (Date.now() - Date.parse(ringing.created_at)) / 1000;
    $('ring-wait').textContent = t('console.ring_wait', { wait: formatDuration(waited) });
    const left = Math.max(0, secondsUntil(ringing.ring_until));
    ringSecs = Math.max(ringSecs, left);
    panel.querySelector('.ring-left').style.width = `${ringSecs ? (100 * left) / ringSecs : 0}%`;
  }
  if (status && status.state === 'wrap_up') {
    renderStatus();
    if (secondsUntil(status.until) <= 0 && !asked) {
      asked = true;
      refreshStatus();
    }
  }
}

/** A queue summary: is it a call that rings me now? */
function noteSummary(summary) {
  if (summary.state === 'queued' && summary.ringing && summary.ringing === live.me) {
    ringing = summary;
  } else if (ringing && ringing.call_id === summary.call_id) {
    ringing = null;
  }
  renderRing();
}

/**
 * The events this module follows: the operator's own state, and the queue's summaries that say
 * whom a call rings. It never consumes them (the queue shows them too).
 * @param {any} event
 */
export function onRoutingEvent(event) {
  if (event.type === 'operator.status') {
    status = event.status;
    asked = false;
    renderStatus();
    if (status.state !== 'ringing' && ringing) {
      ringing = null;
      renderRing();
    }
    return true;
  }
  if (event.type === 'queue.call_added' || event.type === 'queue.call_updated') {
    noteSummary(event.call);
  } else if (event.type === 'queue.call_removed' && ringing && ringing.call_id === event.call_id) {
    ringing = null;
    renderRing();
  }
  return false;
}

/** After a (re)connect, and the queue's answer: the state now, and a call ringing me. */
export async function refreshStatus(calls) {
  if (calls) {
    ringing = calls.find((c) => c.state === 'queued' && c.ringing && c.ringing === live.me) || null;
    renderRing();
  }
  try {
    const reply = await request(live.socket, 'status', {});
    status = reply.status;
  } catch (error) {
    console.warn('console: status', error);
  }
  renderStatus();
}

async function setStatus(state) {
  try {
    const reply = await request(live.socket, 'set_status', { state, note: state === 'away' ? awayReason.value : '' });
    status = reply.status;
    if (state !== 'away') {
      awayReason.value = '';
    }
  } catch (error) {
    appendChat('system', errorText(error));
  }
  renderStatus();
}

async function decline() {
  if (!ringing) {
    return;
  }
  const callId = ringing.call_id;
  ringing = null;
  renderRing();
  try {
    await request(live.socket, 'decline', { call_id: callId });
  } catch (error) {
    appendChat('system', errorText(error));
  }
}

export function bindRouting() {
  statusForm.addEventListener('submit', (event) => {
    event.preventDefault();
    setStatus('away');
  });
  readyButton.addEventListener('click', () => setStatus('ready'));
  awayButton.addEventListener('click', () => setStatus('away'));
  $('ring-accept').addEventListener('click', () => {
    const callId = ringing?.call_id;
    ringing = null;
    renderRing();
    if (callId) {
      acceptCall(callId);
    }
  });
  $('ring-decline').addEventListener('click', decline);
  window.setInterval(tickRing, 1000);
  renderStatus();
}
