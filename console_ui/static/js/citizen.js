// Citizen page (/): the start screen and the live call. POST /api/calls creates the call; the
// page then talks over Socket.IO /citizen (token auth) and sends its media to the call's media
// session over WebRTC. Everything needed to pick the call up again after a reload (id, token,
// last sequence number, unsent chat) lives in sessionStorage, which one tab keeps across reloads.
import { loadCatalog, t } from './i18n.js';
import { MediaLink } from './media_link.js';
import { connect, newClientId, request } from './socket.js';

// State texts, written out so the catalogue test can find every key.
const STATE_TEXT = {
  idle: () => t('call.state.idle'),
  connecting: () => t('call.state.connecting'),
  queued: () => t('call.state.queued'),
  answered: () => t('call.state.answered'),
  reconnecting: () => t('call.state.reconnecting'),
  ended: () => t('call.state.ended'),
};

const STORAGE_KEY = 'lifeline.call';
/** A permission prompt nobody answers must not hold the call: go on without it after this. */
const PROMPT_TIMEOUT_MS = 10_000;
/** Locations go out at most this often (a phone may report several fixes a second). */
const LOCATION_INTERVAL_MS = 1000;
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
};

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
  page.hint.textContent = waiting ? t('call.operator_soon') : '';
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
    live.serverState = 'answered';
  } else if (state === 'queued' || state === 'transferred') {
    live.serverState = 'queued';
  } else {
    finish();
    return;
  }
  render();
}

/** One line of help: where this browser keeps its permissions. */
function permissionHelp() {
  const ua = navigator.userAgent;
  if (/iPhone|iPad|iPod/.test(ua)) {
    return t('call.perm.how_ios');
  }
  if (/Firefox\//.test(ua)) {
    return t('call.perm.how_firefox');
  }
  if (/SamsungBrowser\//.test(ua)) {
    return t('call.perm.how_samsung');
  }
  return t('call.perm.how_chrome');
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
function showPhoto(from, seq, src) {
  live.lastSeq = Math.max(live.lastSeq, seq || 0);
  save();
  if (shownPhotos.has(seq)) {
    return;
  }
  shownPhotos.add(seq);
  const item = appendChat(from, t('chat.photo'));
  const image = document.createElement('img');
  image.className = 'chat-photo';
  image.alt = t('chat.photo');
  image.src = src;
  image.dataset.testid = 'chat-photo';
  item.append(image);
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
      showPhoto('me', event.seq, URL.createObjectURL(await response.blob()));
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
    live.lastSentFix = ''; // try again with the next fix or reconnect
    console.warn('citizen: location not sent', error);
  }
}

function askForAddress() {
  if (!live.askedAddress && !live.ended) {
    live.askedAddress = true;
    systemLine(`${t('call.perm.location_denied')} ${permissionHelp()}`);
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
  const audioOnly = await withPromptTimeout(
    navigator.mediaDevices.getUserMedia({ audio: true }).catch((error) => error),
  );
  if (audioOnly instanceof MediaStream) {
    systemLine(`${t('call.perm.camera_denied')} ${permissionHelp()}`);
    return audioOnly;
  }
  systemLine(`${t('call.perm.media_denied')} ${permissionHelp()}`);
  return null;
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

/** @param {MediaStream | null} stream */
function showLocal(stream) {
  live.stream = stream;
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
    },
    sendOffer: (offer) => request(socket, 'media_offer', offer),
    sendIce: (candidate) => request(socket, 'media_ice', candidate),
    onTrack: (event) => {
      page.remoteMedia.srcObject = event.streams[0] || new MediaStream([event.track]);
      if (event.track.kind === 'video') {
        page.videos.dataset.remoteVideo = 'true';
      }
      page.remoteMedia.play().catch(() => waitForTapToPlay());
    },
    onOpen: () => {
      live.videoSender = videoSender;
    },
    onFailure: (error) => {
      console.warn('citizen: media offer failed', error);
      if (error && error.code === 'media_busy' && !live.toldBusy) {
        // The node is at capacity: say so once; the chat carries the call, video retries.
        live.toldBusy = true;
        systemLine(t('call.media_busy'));
      }
    },
  };
}

/** The call's media: a new peer connection after every (re)connect, and when the link fails. */
const mediaLink = new MediaLink({
  plan: mediaPlan,
  retryMs: { media_busy: MEDIA_BUSY_RETRY_MS },
  onState: (state) => {
    if (state === 'connected') {
      live.mediaTrouble = false;
    } else if (state === 'failed' || state === 'disconnected') {
      live.mediaTrouble = true;
    }
    render();
  },
  onClose: () => {
    live.videoSender = null;
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
  save();
  keepAwake();
  startLocation();
  openSocket();
  showLocal(await media);
  live.mediaReady = true;
  mediaLink.start();
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
}

/** The call is over (either side ended it): let go of everything. */
function finish() {
  if (live.ended) {
    return;
  }
  live.ended = true;
  mediaLink.close();
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
    old.stop(); // some phones cannot open the second camera while the first runs
    try {
      const fresh = await navigator.mediaDevices.getUserMedia({ video: videoConstraints() });
      const track = fresh.getVideoTracks()[0];
      stream.removeTrack(old);
      stream.addTrack(track);
      await live.videoSender?.replaceTrack(track);
      page.localVideo.srcObject = stream;
    } catch (error) {
      console.warn('citizen: camera switch failed', error);
      systemLine(t('call.switch_failed'));
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
    form.append('photo', file, file.name || 'photo.jpg');
    try {
      const response = await fetch(`/api/calls/${encodeURIComponent(live.callId)}/photos`, {
        method: 'POST',
        headers: { 'X-Call-Token': live.token },
        body: form,
      });
      const reply = await response.json();
      if (!response.ok) {
        throw new Error(reply && reply.error ? reply.error.code : String(response.status));
      }
      line.remove();
      showPhoto('me', reply.seq, URL.createObjectURL(file));
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
  $('end-call').addEventListener('click', () => {
    setCallState('ended');
    hooks.endCall();
  });
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
  const saved = restore();
  if (saved && call.state === 'idle') {
    resumeCall(saved);
  } else if (call.state !== 'idle') {
    render(); // a tap that came before the texts: show them now
  }
  document.body.dataset.ready = 'true';
}

main();
