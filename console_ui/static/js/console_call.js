// The open call at the console: joining it (and catching up after a reload or reconnect), its
// events (chat, photos, location, the caller leaving and coming back), the timer, and the
// operator's actions in it: chat, snapshot, mute. Ending it and turning it into a report are
// console_dialogs.js's; handing it on, console_transfer.js's.
import { attachmentElement } from './attachments.js';
import { appendChat, errorText, live, page, placeText, renderButtons, setCallStatus } from './console_page.js';
import { offerEido } from './console_eido.js';
import { closeMedia, onCallerLink, setMuted, startMedia } from './console_media.js';
import { hideCallRecording, showCallRecording } from './console_recording.js';
import { openWaitingInvite } from './console_queue.js';
import { forgetCall } from './console_transfer.js';
import { formatDuration, t } from './i18n.js';
import { newClientId, request } from './socket.js';

/** The citizen's page offers its new media right after reconnecting; look again after this. */
const CITIZEN_BACK_REOFFER_MS = 1500;

const timer = { startedMs: 0, id: 0 };

/** Starts the call timer from now (or from `startedMs`, for a call answered elsewhere). */
function startTimer(startedMs = Date.now()) {
  stopTimer();
  timer.startedMs = startedMs;
  const tick = () => {
    page.timer.textContent = formatDuration((Date.now() - timer.startedMs) / 1000);
  };
  tick();
  timer.id = window.setInterval(tick, 1000);
}

function stopTimer() {
  window.clearInterval(timer.id);
  timer.id = 0;
}

/**
 * Shows a call this operator holds and catches up on what was said and where the caller went.
 * With the call's summary from the accept, the call opens and its media starts at once, before
 * the join's round trip (on a loaded server that one costs a second of the caller's picture).
 * @param {string} callId
 * @param {object | null} [accepted] the call as the accept's answer gave it
 */
export async function openCall(callId, accepted = null) {
  const since = live.active && live.active.callId === callId ? live.active.lastSeq : 0;
  if (accepted && (!live.active || live.active.callId !== callId)) {
    showCall(callId, accepted);
  }
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
    showCall(callId, summary);
  } else {
    live.active.summary = summary;
    showCallRecording(summary);
  }
  for (const event of reply.events || []) {
    onCallEvent(event);
  }
}

/**
 * The call on screen, empty, its timer running, and its media starting.
 * @param {string} callId
 * @param {any} summary
 */
function showCall(callId, summary) {
  live.active = {
    callId,
    summary,
    lastSeq: 0,
    citizenConnected: true,
    lines: new Map(),
    placeSeq: 0,
  };
  page.chatLog.replaceChildren();
  page.snapshots.replaceChildren();
  live.map?.clear();
  delete page.map.dataset.located;
  page.map.dataset.lat = '';
  page.map.dataset.lon = '';
  page.map.dataset.accuracy = '';
  page.locationText.textContent = '';
  page.callInfo.textContent = `${t(`channel.${summary.channel}`)} · ${summary.language.toUpperCase()}`;
  showSituation(summary.situation);
  page.videoBox.dataset.mode = summary.mode;
  showCode(summary.verification_code);
  showCallRecording({ ...summary, call_id: callId });
  offerEido(callId);
  startTimer(summary.answered_at ? Date.parse(summary.answered_at) : Date.now());
  setCallStatus('live');
  live.map?.refresh();
  startMedia();
}

/**
 * The three words the operator reads aloud: the caller's page shows the same, and tells the
 * caller that a real operator says them.
 * @param {string[] | undefined} words
 */
function showCode(words) {
  const code = (words || []).join(' ');
  page.verificationCode.textContent = code;
  page.verification.hidden = !code;
}

/** The call is over here: stop media, keep the log on screen until the next call. */
export function closeCall() {
  if (!live.active) {
    return;
  }
  live.active = null;
  forgetCall();
  hideCallRecording();
  showCode([]);
  closeMedia();
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
  // After what closed it has had its say (a transfer's status line): the invited caller next.
  window.setTimeout(openWaitingInvite, 0);
}

/**
 * The caller's "What is happening?" beside the call's channel and language.
 * @param {string | null | undefined} situation
 */
function showSituation(situation) {
  const badge = document.querySelector('[data-testid="call-situation"]');
  if (!(badge instanceof HTMLElement)) {
    return;
  }
  badge.dataset.situation = situation || '';
  badge.hidden = !situation;
  badge.textContent = situation ? t(`situation.${situation}`) : '';
}

/** @param {any} event an event of the open call (live, or caught up by `join`) */
export function onCallEvent(event) {
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
      const kind = event.kind === 'video' ? 'video' : 'photo';
      const line = appendChat('citizen', t(kind === 'video' ? 'chat.clip' : 'chat.photo'));
      if (kind === 'video') {
        line.append(attachmentElement('video', event.url));
      } else {
        const link = document.createElement('a');
        link.href = event.url;
        link.target = '_blank';
        link.rel = 'noopener';
        link.append(attachmentElement('photo', event.url));
        line.append(link);
      }
      active.lines.set(key, line);
    }
  } else if (event.type === 'location') {
    // The newest fix only: one the page sent again (its acknowledgement was lost) comes again
    // with its first seq, and must not move the map back to where the caller was.
    if (typeof event.seq !== 'number' || event.seq > active.placeSeq) {
      active.placeSeq = typeof event.seq === 'number' ? event.seq : active.placeSeq;
      showLocation(event);
    }
  } else if (event.type === 'call.state') {
    if (event.state !== 'answered') {
      closeCall();
    }
  } else if (event.type === 'call.situation') {
    active.summary.situation = event.situation;
    showSituation(event.situation);
  } else if (event.type === 'call.link') {
    onCallerLink(event);
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
        appendChat('system', errorText(error));
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
      error.code === 'no_video' ? t('console.snapshot_no_video') : errorText(error),
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

/** Wires the call's controls (the dialogs' are console_dialogs.js's). */
export function bindCall() {
  page.mute.addEventListener('click', () => {
    const muted = page.mute.getAttribute('aria-pressed') !== 'true';
    page.mute.setAttribute('aria-pressed', String(muted));
    page.mute.textContent = muted ? t('console.unmute') : t('console.mute');
    setMuted(muted);
  });
  page.snapshot.addEventListener('click', () => takeSnapshot());
  page.video.addEventListener('playing', () => {
    page.videoBox.dataset.live = 'true';
  });
  page.chatForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = page.chatInput.value.trim();
    if (text) {
      page.chatInput.value = '';
      sendChat(text);
    }
  });
}
