// Citizen page (/): the start screen and the live call. POST /api/calls creates the call; the
// page then talks over Socket.IO /citizen (token auth) and sends its media to the call's media
// session over WebRTC. Everything needed to pick the call up again after a reload (id, token,
// last sequence number, unsent chat) lives in sessionStorage, which one tab keeps across reloads.
import { attachmentElement, isClip } from './attachments.js';
import { showCode } from './call_code.js';
import {
  browserTrouble,
  mediaFailure,
  mediaFailureText,
  permissionHelp,
  showBrowserHelp,
} from './citizen_browser.js';
import { bindEndButton } from './citizen_end.js';
import { CitizenLink } from './citizen_link.js';
import { QueuePlace } from './citizen_queue.js';
import { SituationPicker } from './citizen_situation.js';
import { showPeople } from './people_present.js';
import { showReceipt } from './call_receipt.js';
import { loadCatalog, t } from './i18n.js';
import { MediaLink } from './media_link.js';
import { connect, newClientId, request } from './socket.js';

// State texts, written out so the catalogue test can find every key.
const STATE_TEXT = {
  idle: () => t('call.state.idle'),
  connecting: () => t('call.state.connecting'),
  queued: () => (call.channel === 'internal_security' ? t('call.state.queued_internal') : t('call.state.queued')),
  answered: () => t('call.state.answered'),
  reconnecting: () => t('call.state.reconnecting'),
  ended: () => t('call.state.ended'),
};

const STORAGE_KEY = 'lifeline.call';
/** "Call again": the next page load starts a call like the one that ended. */
const AGAIN_KEY = 'lifeline.call_again';
/** The camera is checked this often: a stopped track fires no event, iOS may only mute it. */
const CAMERA_CHECK_MS = 1000;
/** A camera muted this long (capture interrupted) is opened again. */
const CAMERA_MUTE_GRACE_MS = 2000;
/** A camera another app holds is tried again this often; the note goes when it opens. */
const CAMERA_RETRY_MS = 4000;
/** A permission prompt nobody answers must not hold the call: go on without it after this. */
const PROMPT_TIMEOUT_MS = 10_000;
/** Locations go out at most this often (a phone may report several fixes a second). */
const LOCATION_INTERVAL_MS = 1000;
/** A fix the server did not take is sent again after this. */
const FIX_RETRY_MS = 2000;
// A refused offer is tried again soon: the next one may land on another media node, or on
// this one once the load has passed; the operator must not wait for the picture.
const MEDIA_BUSY_RETRY_MS = 1500;

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const page = {
  start: document.getElementById('start'),
  misconduct: document.getElementById('misconduct'),
  panel: document.getElementById('call-panel'),
  state: $('call-state'),
  hint: $('call-hint'),
  localVideo: $('local-video'),
  remoteMedia: $('remote-media'),
  videos: document.querySelector('.videos'),
  mute: $('mute'),
  switchCamera: $('switch-camera'),
  chatForm: document.getElementById('chat-form'),
  chatInput: $('chat-input'),
  chatLog: $('chat-log'),
  photoInput: $('photo-input'),
  receipt: $('call-receipt'),
  code: $('verification-box'),
  people: $('people-present'),
  supervisorVoice: $('supervisor-voice'),
  ended: $('call-ended'),
  controls: document.querySelector('.call-controls'),
  endHint: $('end-confirm-hint'),
  photoRow: document.querySelector('.photo-row'),
  videoNote: $('video-note'),
  linkQuality: $('link-quality'),
  queuePlace: new QueuePlace($('queue-position')),
  situationCallBox: $('situation-call'),
};

/** "What is happening?" on the start screen: only marks a choice, sent with the new call. */
const startSituation = new SituationPicker($('situation-start'), () => {});
/** The same on the call, while it waits: sent at once as an update. */
const callSituation = new SituationPicker($('situation-call'), (situation) => sendSituation(situation));

/** The call as this page knows it. */
const call = { channel: 'police', mode: 'video', state: 'idle', muted: false };

/**
 * The live call's working state: what the server told us and what this page holds open.
 * `serverState` is the call's state on the server; what is shown also depends on the links.
 */
const live = {
  callId: '',
  token: '',
  iceServers: [],
  lastSeq: 0,
  /** @type {{client_id: string, body: string}[]} chat not yet acknowledged, resent on reconnect */
  pending: [],
  serverState: 'connecting',
  ended: false,
  everConnected: false,
  mediaTrouble: false,
  /** camera/microphone settled (given, refused or timed out): offers may go */
  mediaReady: false,
  /** @type {any} */ socket: null,
  /** @type {RTCRtpSender | null} */ videoSender: null,
  /** @type {MediaStream | null} */ stream: null,
  facing: 'environment',
  /** @type {Map<string, HTMLLIElement>} chat lines by client id: a message is shown once */
  lines: new Map(),
  geoWatch: -1,
  /** @type {GeolocationPosition | null} */ fix: null,
  lastSentFix: '',
  lastFixSentMs: 0,
  fixTimer: 0,
  askedAddress: false,
  /** @type {any} */ wakeLock: null,
  /** the camera is being opened again (or switched): the watchdog waits */
  cameraBusy: false,
  /** when the camera track went mute (0: it is not) */
  cameraMutedAt: 0,
  /** a camera another app held: when to try it again (0: do not) */
  cameraRetryAt: 0,
  cameraTimer: 0,
  /** @type {HTMLLIElement | null} the "video is not available" line, gone once video flows */
  busyLine: null,
};

/**
 * Hooks for the live call: the UI calls them, the functions below fill them.
 */
export const hooks = {
  /** @param {{channel: string, mode: string}} request */
  startCall: async (request) => console.info('citizen: start call', request),
  endCall: async () => console.info('citizen: end call'),
  /** @param {boolean} muted */
  setMuted: async (muted) => console.info('citizen: muted', muted),
  switchCamera: async () => console.info('citizen: switch camera'),
  /** @param {string} text */
  sendChat: async (text) => console.info('citizen: chat', text.length),
  /** @param {File} file */
  sendPhoto: async (file) => console.info('citizen: photo', file.size),
};

/**
 * Shows a call state: the text, the data-state attribute tests read, and the hint.
 * @param {keyof STATE_TEXT} state
 */
export function setCallState(state) {
  call.state = state;
  page.state.dataset.state = state;
  page.state.textContent = (STATE_TEXT[state] || STATE_TEXT.idle)();
  const waiting = state === 'queued' || state === 'connecting';
  page.hint.hidden = !waiting;
  const internal = call.channel === 'internal_security';
  page.hint.textContent = waiting ? t(internal ? 'call.internal_soon' : 'call.operator_soon') : '';
  if (state !== 'queued') {
    page.queuePlace.hide();
  }
  // Asked while the caller waits; once answered, the operator asks in words.
  page.situationCallBox.hidden = !(state === 'queued' || state === 'connecting');
  document.body.dataset.callState = state;
}

/**
 * Appends one chat line.
 * @param {'me' | 'operator' | 'system'} from
 * @param {string} text
 * @returns {HTMLLIElement}
 */
export function appendChat(from, text) {
  const item = document.createElement('li');
  item.className = `chat-line chat-${from}`;
  const who = document.createElement('span');
  who.className = 'chat-who';
  who.textContent =
    from === 'me' ? t('chat.from_me') : from === 'operator' ? t('chat.from_operator') : t('chat.from_system');
  const body = document.createElement('span');
  body.className = 'chat-text';
  body.textContent = text;
  item.append(who, body);
  page.chatLog.append(item);
  page.chatLog.scrollTop = page.chatLog.scrollHeight;
  return item;
}

// --- storage: what a reload needs ----------------------------------------------------------

function save() {
  if (!live.callId) {
    return;
  }
  const data = {
    callId: live.callId,
    token: live.token,
    iceServers: live.iceServers,
    lastSeq: live.lastSeq,
    pending: live.pending,
    channel: call.channel,
    mode: call.mode,
  };
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(data));
  } catch (error) {
    console.warn('citizen: cannot keep the call for a reload', error);
  }
}

function restore() {
  try {
    const data = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    return data && data.callId && data.token ? data : null;
  } catch {
    return null;
  }
}

// --- what is shown -------------------------------------------------------------------------

/** The shown state: the server's, unless a link is down. */
function render() {
  if (live.ended) {
    setCallState('ended');
  } else if (!live.socket || !live.socket.connected) {
    setCallState(live.everConnected ? 'reconnecting' : 'connecting');
  } else if (live.mediaTrouble) {
    setCallState('reconnecting');
  } else {
    setCallState(live.serverState);
  }
}

/** @param {string} state the server's call state */
function applyServerState(state) {
  if (state === 'answered') {
    if (live.serverState !== 'answered') {
      ladder.announce(); // the operator's console is on the call now: tell it the rung
    }
    live.serverState = 'answered';
  } else if (state === 'queued' || state === 'transferred') {
    live.serverState = 'queued';
  } else {
    finish();
    return;
  }
  render();
}

/** @param {string} message */
function systemLine(message) {
  return appendChat('system', message);
}

/** Photo sequence numbers already in the log: each photo is shown once. */
const shownPhotos = new Set();

/**
 * Shows a photo in the chat log once.
 * @param {'me' | 'operator'} from
 * @param {number} seq
 * @param {string} src
 */
function showPhoto(from, seq, src, kind = 'photo') {
  live.lastSeq = Math.max(live.lastSeq, seq || 0);
  save();
  if (shownPhotos.has(seq)) {
    return;
  }
  shownPhotos.add(seq);
  const item = appendChat(from, t(kind === 'video' ? 'chat.clip' : 'chat.photo'));
  item.append(attachmentElement(kind, src));
}

/** A photo event (sent from this page, maybe before a reload): fetched with the token. */
async function onPhoto(event) {
  if (shownPhotos.has(event.seq)) {
    live.lastSeq = Math.max(live.lastSeq, event.seq || 0);
    return;
  }
  try {
    const response = await fetch(event.url, { headers: { 'X-Call-Token': live.token } });
    if (response.ok) {
      showPhoto('me', event.seq, URL.createObjectURL(await response.blob()), event.kind);
    }
  } catch (error) {
    console.warn('citizen: photo not loaded', error);
  }
}

// --- chat ----------------------------------------------------------------------------------

/**
 * Shows a message once, however often it arrives (sent, echoed, resumed after a reload).
 * @param {'me' | 'operator'} from
 * @param {string} clientId
 * @param {string} body
 * @param {boolean} delivered
 */
function showMessage(from, clientId, body, delivered) {
  let line = live.lines.get(clientId);
  if (!line) {
    line = appendChat(from, body);
    line.dataset.clientId = clientId;
    live.lines.set(clientId, line);
  }
  line.dataset.status = delivered ? 'sent' : 'sending';
}

/** @param {{seq: number, sender: string, client_id: string, body: string}} message */
function onChatMessage(message) {
  live.lastSeq = Math.max(live.lastSeq, message.seq || 0);
  const mine = message.sender === 'citizen';
  showMessage(mine ? 'me' : 'operator', message.client_id, message.body, true);
  if (mine) {
    live.pending = live.pending.filter((item) => item.client_id !== message.client_id);
  }
  save();
}

/** @param {{client_id: string, body: string}} item */
async function deliver(item) {
  if (!live.socket || !live.socket.connected) {
    return; // resent after the reconnect
  }
  try {
    await request(live.socket, 'chat', item);
  } catch (error) {
    console.warn('citizen: chat not sent yet', error);
    return;
  }
  live.pending = live.pending.filter((other) => other.client_id !== item.client_id);
  showMessage('me', item.client_id, item.body, true);
  save();
}

// --- location ------------------------------------------------------------------------------

/** @param {GeolocationPosition} position */
function onFix(position) {
  live.fix = position;
  window.clearTimeout(live.fixTimer);
  const wait = live.lastFixSentMs + LOCATION_INTERVAL_MS - Date.now();
  if (wait > 0) {
    live.fixTimer = window.setTimeout(sendFix, wait);
  } else {
    sendFix();
  }
}

async function sendFix() {
  const position = live.fix;
  if (!position || !live.socket || !live.socket.connected || live.ended) {
    return;
  }
  const { latitude, longitude, accuracy, heading, speed } = position.coords;
  const key = `${latitude},${longitude},${accuracy}`;
  if (key === live.lastSentFix) {
    return; // nothing moved
  }
  const finite = (value) => (Number.isFinite(value) ? value : null);
  live.lastSentFix = key;
  live.lastFixSentMs = Date.now();
  try {
    await request(live.socket, 'location', {
      lat: latitude,
      lon: longitude,
      accuracy: finite(accuracy),
      heading: finite(heading),
      speed: finite(speed),
      timestamp: position.timestamp || Date.now(),
    });
  } catch (error) {
    // Not stored (the database away, the link down): the same fix again shortly, as a caller
    // who stands still gives no next one; stored once however often it comes (the server
    // knows a fix by its time and place).
    live.lastSentFix = '';
    console.warn('citizen: location not sent', error);
    window.clearTimeout(live.fixTimer);
    live.fixTimer = window.setTimeout(sendFix, FIX_RETRY_MS);
  }
}

function askForAddress() {
  if (!live.askedAddress && !live.ended) {
    live.askedAddress = true;
    // A text call asked for no camera: its advice is about the location alone.
    const help = call.mode === 'text' ? t('call.perm.how_location') : permissionHelp();
    systemLine(`${t('call.perm.location_denied')} ${help}`);
    systemLine(t('call.ask_address'));
  }
}

function startLocation() {
  if (!('geolocation' in navigator)) {
    askForAddress();
    return;
  }
  live.geoWatch = navigator.geolocation.watchPosition(
    onFix,
    (error) => {
      if (error.code === error.PERMISSION_DENIED) {
        askForAddress();
      }
    },
    { enableHighAccuracy: true, maximumAge: 0, timeout: 30_000 },
  );
  // A prompt left unanswered (or no fix at all): ask in the chat, keep watching.
  window.setTimeout(() => {
    if (!live.fix) {
      askForAddress();
    }
  }, PROMPT_TIMEOUT_MS);
}

// --- camera and microphone -----------------------------------------------------------------

/**
 * @template T
 * @param {Promise<T>} promise
 * @returns {Promise<T | 'timeout'>}
 */
function withPromptTimeout(promise) {
  return Promise.race([
    promise,
    new Promise((resolve) => window.setTimeout(() => resolve('timeout'), PROMPT_TIMEOUT_MS)),
  ]);
}

function videoConstraints() {
  return { facingMode: { ideal: live.facing }, width: { ideal: 640 }, height: { ideal: 480 } };
}

/**
 * Asks for what the call mode needs and takes what is allowed: camera and microphone, else the
 * microphone alone, else nothing (the chat still works). A late answer to a prompt that timed
 * out still joins the call.
 * @returns {Promise<MediaStream | null>}
 */
async function acquireMedia() {
  if (call.mode === 'text' || !navigator.mediaDevices?.getUserMedia) {
    return null;
  }
  const both = navigator.mediaDevices.getUserMedia({ audio: true, video: videoConstraints() });
  const first = await withPromptTimeout(both.catch((error) => error));
  if (first instanceof MediaStream) {
    return first;
  }
  if (first === 'timeout') {
    systemLine(`${t('call.perm.prompt_timeout')} ${permissionHelp()}`);
    both.then((stream) => useLateStream(stream)).catch(() => {});
    return null;
  }
  const cameraFailure = mediaFailure(first);
  const audioOnly = await withPromptTimeout(
    navigator.mediaDevices.getUserMedia({ audio: true }).catch((error) => error),
  );
  if (audioOnly instanceof MediaStream) {
    const text = mediaFailureText(cameraFailure, false);
    systemLine(text);
    showVideoNote(text);
    if (cameraFailure === 'in_use') {
      live.cameraRetryAt = Date.now() + CAMERA_RETRY_MS; // freed by the other app, perhaps
    }
    return audioOnly;
  }
  const failure = audioOnly === 'timeout' ? cameraFailure : mediaFailure(audioOnly);
  systemLine(mediaFailureText(failure, true));
  return null;
}

/** @param {string} text why the operator does not see the caller */
function showVideoNote(text) {
  page.videoNote.textContent = text;
  page.videoNote.hidden = false;
}

function hideVideoNote() {
  page.videoNote.hidden = true;
  page.videoNote.textContent = '';
  live.busyLine?.remove();
  live.busyLine = null;
}

/**
 * Follows the camera track: ended (iOS gave the camera to a phone call or to the native camera)
 * or muted for long, it is opened again.
 * @param {MediaStreamTrack} track
 */
function watchCamera(track) {
  track.addEventListener('ended', () => reopenCamera());
  track.addEventListener('mute', () => {
    live.cameraMutedAt = Date.now();
  });
  track.addEventListener('unmute', () => {
    live.cameraMutedAt = 0;
  });
}

/** Every second: a camera that stopped (a stopped track fires no event) or stays muted. */
function checkCamera() {
  if (live.ended || call.mode !== 'video' || live.cameraBusy || !live.stream) {
    return;
  }
  const track = live.stream.getVideoTracks()[0];
  const now = Date.now();
  if (!track) {
    if (live.cameraRetryAt && now >= live.cameraRetryAt) {
      reopenCamera();
    }
    return;
  }
  const mutedLong = live.cameraMutedAt > 0 && now - live.cameraMutedAt > CAMERA_MUTE_GRACE_MS;
  if (track.readyState === 'ended' || mutedLong) {
    reopenCamera();
  }
}

/**
 * Opens the camera again and puts the new track on the call: replaceTrack where the call sends
 * video already (no new offer), else a new offer that carries it.
 */
async function reopenCamera() {
  const stream = live.stream;
  if (live.cameraBusy || live.ended || !stream) {
    return;
  }
  live.cameraBusy = true;
  try {
    const fresh = await navigator.mediaDevices.getUserMedia({ video: videoConstraints() });
    const track = fresh.getVideoTracks()[0];
    if (live.ended) {
      track.stop();
      return;
    }
    for (const old of stream.getVideoTracks()) {
      stream.removeTrack(old);
      old.stop();
    }
    stream.addTrack(track);
    live.cameraMutedAt = 0;
    live.cameraRetryAt = 0;
    showLocal(stream);
    if (live.videoSender) {
      // Below the video rung the sender stays empty; the ladder puts the camera back on it.
      if (ladder.sendsVideo) {
        await live.videoSender.replaceTrack(track);
      }
    } else {
      mediaLink.start();
    }
    hideVideoNote();
  } catch (error) {
    const failure = mediaFailure(error);
    showVideoNote(mediaFailureText(failure, false));
    live.cameraRetryAt = failure === 'in_use' ? Date.now() + CAMERA_RETRY_MS : 0;
    live.cameraMutedAt = 0;
  } finally {
    live.cameraBusy = false;
  }
}

/** @param {MediaStream} stream */
function useLateStream(stream) {
  if (live.ended || live.stream) {
    stream.getTracks().forEach((track) => track.stop());
    return;
  }
  showLocal(stream);
  mediaLink.start();
}

/** Camera tracks already followed (each gets its listeners once). */
const watchedCameras = new WeakSet();

/** @param {MediaStream | null} stream */
function showLocal(stream) {
  live.stream = stream;
  const camera = stream && stream.getVideoTracks()[0];
  if (camera && !watchedCameras.has(camera)) {
    watchedCameras.add(camera);
    watchCamera(camera);
  }
  const hasVideo = Boolean(stream && stream.getVideoTracks().length);
  page.localVideo.srcObject = hasVideo ? stream : null;
  page.localVideo.hidden = !hasVideo;
  page.switchCamera.disabled = !hasVideo;
  page.mute.disabled = !(stream && stream.getAudioTracks().length);
  if (stream) {
    stream.getAudioTracks().forEach((track) => {
      track.enabled = !call.muted;
    });
  }
}

/**
 * What the next offer needs: the camera and microphone as they are now, on this socket. Nothing
 * for a text call, an ended one, or while the socket is down (every connect offers again).
 * @returns {import('./media_link.js').MediaPlan | null}
 */
function mediaPlan() {
  if (call.mode === 'text' || live.ended || !live.socket || !live.socket.connected) {
    return null;
  }
  const stream = live.stream;
  const socket = live.socket;
  let videoSender = null;
  let voiceLine = null;
  return {
    iceServers: live.iceServers,
    setup: (peer) => {
      const audio = stream && stream.getAudioTracks()[0];
      if (audio) {
        peer.addTransceiver(audio, { direction: 'sendrecv', streams: [stream] });
      } else {
        peer.addTransceiver('audio', { direction: 'recvonly' }); // still hear the operator
      }
      const video = stream && stream.getVideoTracks()[0];
      if (video) {
        videoSender = peer.addTransceiver(video, { direction: 'sendonly', streams: [stream] }).sender;
      }
      // A second voice: a supervisor who speaks to the call (barge-in).
      voiceLine = peer.addTransceiver('audio', { direction: 'recvonly' });
    },
    sendOffer: (offer) => request(socket, 'media_offer', offer),
    sendIce: (candidate) => request(socket, 'media_ice', candidate),
    onTrack: (event) => {
      if (event.transceiver === voiceLine) {
        page.supervisorVoice.srcObject = new MediaStream([event.track]);
        page.supervisorVoice.play().catch(() => {});
        return;
      }
      page.remoteMedia.srcObject = event.streams[0] || new MediaStream([event.track]);
      if (event.track.kind === 'video') {
        page.videos.dataset.remoteVideo = 'true';
      }
      page.remoteMedia.play().catch(() => waitForTapToPlay());
    },
    onOpen: (pc) => {
      live.videoSender = videoSender;
      ladder.opened(pc, videoSender);
    },
    onFailure: (error) => {
      console.warn('citizen: media offer failed', error);
      if (error && error.code === 'media_busy') {
        ladder.refused();
      }
      if (error && error.code === 'media_busy' && !live.toldBusy) {
        // The node is at capacity: say so once; the chat carries the call, video retries. The
        // line goes once the media connects.
        live.toldBusy = true;
        live.busyLine = systemLine(t('call.media_busy'));
      }
    },
  };
}

/** The degradation ladder: video, audio only, text, from the link's measured quality. */
const ladder = new CitizenLink({
  element: page.linkQuality,
  camera: () => live.stream?.getVideoTracks()[0] || null,
  socket: () => live.socket,
});

/** The call's media: a new peer connection after every (re)connect, and when the link fails. */
const mediaLink = new MediaLink({
  plan: mediaPlan,
  retryMs: { media_busy: MEDIA_BUSY_RETRY_MS },
  onState: (state) => {
    if (state === 'connected') {
      live.mediaTrouble = false;
      live.busyLine?.remove();
      live.busyLine = null;
      if (live.stream?.getVideoTracks().length) {
        hideVideoNote();
      }
    } else if (state === 'failed' || state === 'disconnected') {
      live.mediaTrouble = true;
    }
    render();
  },
  onClose: () => {
    live.videoSender = null;
    ladder.closed();
  },
});

/** After a reload there is no user gesture: the operator's voice waits for the first tap. */
function waitForTapToPlay() {
  systemLine(t('call.tap_to_hear'));
  document.addEventListener('pointerdown', () => page.remoteMedia.play().catch(() => {}), {
    once: true,
  });
}

// --- screen --------------------------------------------------------------------------------

async function keepAwake() {
  if (!('wakeLock' in navigator) || live.ended || document.visibilityState !== 'visible') {
    return;
  }
  try {
    live.wakeLock = await navigator.wakeLock.request('screen');
  } catch (error) {
    console.info('citizen: no wake lock', error);
  }
}

// --- the call ------------------------------------------------------------------------------

/** Connects (or reconnects) the socket; every connect resumes the call and renews the media. */
function openSocket() {
  const socket = connect('/citizen', (cb) => cb({ token: live.token, last_seq: live.lastSeq }));
  live.socket = socket;
  socket.on('connect', async () => {
    live.everConnected = true;
    try {
      const reply = await request(socket, 'resume', { last_seq: live.lastSeq });
      for (const message of reply.events || []) {
        if (message.type === 'chat.message') {
          onChatMessage(message);
        } else if (message.type === 'call.photo') {
          onPhoto(message);
        }
      }
      applyServerState(reply.call.state);
      showCode(page.code, reply.call);
    } catch (error) {
      console.warn('citizen: resume failed', error);
      render();
    }
    if (live.ended) {
      return;
    }
    for (const item of [...live.pending]) {
      showMessage('me', item.client_id, item.body, false);
      deliver(item);
    }
    live.lastSentFix = '';
    sendFix();
    if (live.mediaReady) {
      mediaLink.start();
    }
  });
  socket.on('disconnect', () => {
    live.mediaTrouble = false;
    render();
  });
  socket.on('connect_error', (error) => {
    const code = error && error.data && error.data.code;
    if (code === 'call_ended' || code === 'bad_call_token') {
      finish();
    }
    render();
  });
  socket.on('event', (event) => {
    if (!event || live.ended) {
      return;
    }
    if (event.type === 'call.state') {
      applyServerState(event.state);
      showCode(page.code, event);
    } else if (event.type === 'queue.position') {
      // Sent only while the call waits (before the resume's answer, too); one computed just
      // before an accept may come after it.
      if (live.serverState !== 'answered') {
        page.queuePlace.show(event);
      }
    } else if (event.type === 'call.link') {
      ladder.remote(event.quality);
    } else if (event.type === 'call.people') {
      showPeople(page.people, event, systemLine);
    } else if (event.type === 'chat.message') {
      onChatMessage(event);
    } else if (event.type === 'call.photo') {
      onPhoto(event);
    } else if (event.type === 'media.lost') {
      // The server's media node for this call is gone: offer again now, it places us anew.
      live.mediaTrouble = true;
      render();
      mediaLink.start();
    }
  });
  socket.on('error', (error) => console.warn('citizen: refused', error));
}

/** Shows the panel for a call (new or resumed). */
function showPanel() {
  page.start.hidden = true;
  page.misconduct.hidden = true;
  page.panel.hidden = false;
  page.panel.dataset.mode = call.mode;
  page.panel.dataset.channel = call.channel;
}

/** @param {{channel: string, mode: string}} request */
async function beginCall(request) {
  const media = acquireMedia();
  let created;
  try {
    const response = await fetch('/api/calls', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({
        channel: request.channel,
        mode: request.mode,
        language: document.documentElement.lang || 'en',
        // Only if tapped: a call without one starts just the same.
        ...(startSituation.chosen ? { situation: startSituation.chosen } : {}),
      }),
    });
    if (!response.ok) {
      throw new Error(String(response.status));
    }
    created = await response.json();
  } catch (error) {
    console.warn('citizen: call not created', error);
    systemLine(t('call.could_not_start'));
    live.ended = true;
    render();
    return;
  }
  live.callId = created.call_id;
  live.token = created.token;
  live.iceServers = created.ice_servers || [];
  callSituation.show(startSituation.chosen);
  save();
  keepAwake();
  startLocation();
  openSocket();
  showLocal(await media);
  live.mediaReady = true;
  mediaLink.start();
  live.cameraTimer = window.setInterval(checkCamera, CAMERA_CHECK_MS);
}

/** Picks a call up after a reload. */
async function resumeCall(saved) {
  call.channel = saved.channel;
  call.mode = saved.mode;
  live.callId = saved.callId;
  live.token = saved.token;
  live.iceServers = saved.iceServers || [];
  live.pending = saved.pending || [];
  // The chat log went with the old page: fetch all of it again (the server sends each once).
  live.lastSeq = 0;
  live.everConnected = true;
  showPanel();
  render();
  const media = acquireMedia();
  keepAwake();
  startLocation();
  openSocket();
  showLocal(await media);
  live.mediaReady = true;
  mediaLink.start();
  live.cameraTimer = window.setInterval(checkCamera, CAMERA_CHECK_MS);
}

/**
 * The ended screen, at once and in view: the controls, the video and the chat box go, "Call
 * again" is offered; the chat log and the receipt stay to read.
 */
function showEnded() {
  page.ended.hidden = false;
  page.controls.hidden = true;
  page.endHint.hidden = true;
  page.videos.hidden = true;
  page.chatForm.hidden = true;
  page.photoRow.hidden = true;
  page.queuePlace.hide();
  page.situationCallBox.hidden = true;
  page.hint.hidden = true;
  page.panel.scrollIntoView({ block: 'start' }); // the ended card first, the receipt below
  page.ended.focus({ preventScroll: true });
}

/** "Call again": a fresh page starts a call like the one that ended (a clean slate). */
function callAgain() {
  try {
    sessionStorage.setItem(AGAIN_KEY, JSON.stringify({ channel: call.channel, mode: call.mode }));
  } catch (error) {
    console.warn('citizen: cannot keep the call-again request', error);
  }
  window.location.replace(window.location.pathname);
}

/** The call-again request a page load finds (and forgets), if any. */
function takeAgain() {
  try {
    const data = JSON.parse(sessionStorage.getItem(AGAIN_KEY) || 'null');
    sessionStorage.removeItem(AGAIN_KEY);
    const channels = ['police', 'internal_security'];
    return data && channels.includes(data.channel) && ['video', 'text'].includes(data.mode) ? data : null;
  } catch {
    return null;
  }
}

/**
 * "What is happening?" named on the call: sent now (the queue, the wall and the operator see it).
 * @param {string} situation
 */
async function sendSituation(situation) {
  if (!live.socket || !live.socket.connected || live.ended) {
    callSituation.status(t('situation.not_sent'));
    return;
  }
  try {
    await request(live.socket, 'situation', { situation });
    callSituation.status(t('situation.sent'));
  } catch (error) {
    console.warn('citizen: situation not sent', error);
    callSituation.status(t('situation.not_sent'));
  }
}

/** The call is over (either side ended it): let go of everything. */
function finish() {
  if (live.ended) {
    return;
  }
  live.ended = true;
  showEnded();
  window.clearInterval(live.cameraTimer);
  showCode(page.code, {});
  page.people.hidden = true;
  page.supervisorVoice.srcObject = null;
  mediaLink.close();
  page.linkQuality.hidden = true;
  live.stream?.getTracks().forEach((track) => track.stop());
  page.localVideo.srcObject = null;
  page.remoteMedia.srcObject = null;
  if (live.geoWatch >= 0) {
    navigator.geolocation.clearWatch(live.geoWatch);
  }
  window.clearTimeout(live.fixTimer);
  live.wakeLock?.release().catch(() => {});
  live.wakeLock = null;
  live.socket?.disconnect();
  sessionStorage.removeItem(STORAGE_KEY);
  page.chatInput.disabled = true;
  render();
  if (live.callId && live.token) {
    showReceipt(page.receipt, live.callId, live.token);
  }
}

Object.assign(hooks, {
  startCall: beginCall,
  endCall: async () => {
    if (live.socket && live.socket.connected && !live.ended) {
      try {
        await request(live.socket, 'end_call', {});
      } catch (error) {
        console.warn('citizen: end_call', error);
      }
    }
    finish();
  },
  setMuted: async (muted) => {
    live.stream?.getAudioTracks().forEach((track) => {
      track.enabled = !muted;
    });
  },
  switchCamera: async () => {
    const stream = live.stream;
    const old = stream && stream.getVideoTracks()[0];
    if (!old) {
      return;
    }
    live.facing = live.facing === 'environment' ? 'user' : 'environment';
    live.cameraBusy = true; // the watchdog must not reopen what this stops on purpose
    old.stop(); // some phones cannot open the second camera while the first runs
    try {
      const fresh = await navigator.mediaDevices.getUserMedia({ video: videoConstraints() });
      const track = fresh.getVideoTracks()[0];
      stream.removeTrack(old);
      stream.addTrack(track);
      watchedCameras.add(track);
      watchCamera(track);
      if (ladder.sendsVideo) {
        await live.videoSender?.replaceTrack(track);
      }
      page.localVideo.srcObject = stream;
    } catch (error) {
      console.warn('citizen: camera switch failed', error);
      systemLine(t('call.switch_failed'));
    } finally {
      live.cameraBusy = false;
    }
  },
  sendChat: async (text) => {
    const item = { client_id: newClientId(), body: text };
    live.pending.push(item);
    save();
    showMessage('me', item.client_id, item.body, false);
    await deliver(item);
  },
  sendPhoto: async (file) => {
    if (!live.callId || !live.token) {
      return;
    }
    const line = systemLine(t('chat.photo_sending'));
    const form = new FormData();
    const clip = isClip(file);
    form.append(clip ? 'clip' : 'photo', file, file.name || (clip ? 'clip.mp4' : 'photo.jpg'));
    const route = clip ? 'clips' : 'photos';
    try {
      const response = await fetch(`/api/calls/${encodeURIComponent(live.callId)}/${route}`, {
        method: 'POST',
        headers: { 'X-Call-Token': live.token },
        body: form,
      });
      const reply = await response.json();
      if (!response.ok) {
        throw new Error(reply && reply.error ? reply.error.code : String(response.status));
      }
      line.remove();
      showPhoto('me', reply.seq, URL.createObjectURL(file), reply.kind);
    } catch (error) {
      console.warn('citizen: photo not sent', error);
      line.remove();
      systemLine(photoRefusal(error instanceof Error ? error.message : ''));
    }
  },
});

/**
 * What the caller reads when a photo was not sent: over the call's photo quota and a busy
 * server say the call goes on and when to try again; anything else, the plain failure.
 * @param {string} code the refusal's error code
 */
function photoRefusal(code) {
  if (code === 'photo_limit') {
    return t('chat.photo_limit');
  }
  if (code === 'uploads_busy') {
    return t('chat.photo_busy');
  }
  if (code === 'not_a_video') {
    return t('chat.not_a_video');
  }
  if (code === 'video_too_large') {
    return t('chat.video_too_large');
  }
  return t('chat.photo_failed');
}

/** @param {{channel: string, mode: string}} request */
function startCall(request) {
  call.channel = request.channel;
  call.mode = request.mode;
  showPanel();
  setCallState('connecting');
  (request.mode === 'text' ? page.chatInput : page.state).focus?.();
  hooks.startCall(request);
}

function bind() {
  for (const button of document.querySelectorAll('button[data-mode][data-channel]')) {
    button.addEventListener('click', () =>
      startCall({ channel: button.dataset.channel, mode: button.dataset.mode }),
    );
  }
  bindEndButton($('end-call'), page.endHint, () => {
    setCallState('ended');
    showEnded();
    hooks.endCall();
  });
  $('call-again').addEventListener('click', () => callAgain());
  page.switchCamera.addEventListener('click', () => hooks.switchCamera());
  page.mute.addEventListener('click', () => {
    call.muted = !call.muted;
    page.mute.setAttribute('aria-pressed', String(call.muted));
    const label = call.muted ? t('call.unmute') : t('call.mute');
    page.mute.setAttribute('aria-label', label);
    page.mute.title = label;
    hooks.setMuted(call.muted);
  });
  page.chatForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = page.chatInput.value.trim();
    if (!text || live.ended) {
      return;
    }
    page.chatInput.value = '';
    hooks.sendChat(text);
  });
  $('send-photo').addEventListener('click', () => page.photoInput.click());
  page.photoInput.addEventListener('change', () => {
    const [file] = page.photoInput.files || [];
    if (file) {
      hooks.sendPhoto(file);
    }
    page.photoInput.value = '';
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && live.callId && !live.ended) {
      keepAwake(); // the browser drops the lock when the page is hidden
    }
  });
}

/** Opened from a report's follow page (`/?report=<id>`): say which report the call is about. */
function showAboutReport() {
  const id = new URLSearchParams(window.location.search).get('report') || '';
  if (/^\d{1,12}$/.test(id)) {
    $('about-report').textContent = t('citizen.about_report', { id });
    $('about-report').hidden = false;
  }
}

async function main() {
  bind();
  await loadCatalog(document.documentElement.lang);
  showAboutReport();
  const trouble = browserTrouble();
  if (trouble) {
    // No camera here (plain HTTP, an app's own browser): say where the call works, and keep
    // only the text call, which needs none.
    showBrowserHelp($('open-in-browser'), trouble);
    for (const button of document.querySelectorAll('button[data-mode="video"]')) {
      if (button instanceof HTMLElement) {
        button.hidden = true;
      }
    }
  }
  const saved = restore();
  const again = saved ? null : takeAgain();
  if (saved && call.state === 'idle') {
    resumeCall(saved);
  } else if (again && call.state === 'idle') {
    startCall({ channel: again.channel, mode: trouble ? 'text' : again.mode });
  } else if (call.state !== 'idle') {
    render(); // a tap that came before the texts: show them now
  }
  document.body.dataset.ready = 'true';
}

main();
