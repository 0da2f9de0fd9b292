// The citizen's message thread (/thread): write to the police (or to internal security) without
// a call, with photos and video clips, and read the answers live. The thread's token stays on
// this device (localStorage) and in the page's link (/thread#<id>.<token>, never sent in a
// request line), so a reload or the link opened elsewhere shows the whole thread again.
// Messages are posted over HTTP with a client id (a resend is stored once); Socket.IO /thread
// brings the answers, and after every (re)connect the page asks for the whole thread.
import { attachmentElement, isClip } from './attachments.js';
import { loadCatalog, t } from './i18n.js';
import { MessageLog } from './message_log.js';
import { connect, newClientId, request } from './socket.js';

const STORAGE_KEY = 'lifeline.thread';
const TOKEN_HEADER = 'X-Thread-Token';
const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const ui = {
  root: $('thread'),
  heading: $('thread-heading'),
  state: $('thread-state'),
  setup: $('thread-setup'),
  contact: $('thread-contact'),
  locate: $('thread-share-location'),
  locationStatus: $('thread-location-status'),
  empty: $('thread-empty'),
  form: $('thread-form'),
  input: $('message-input'),
  attach: $('message-attach'),
  attached: $('thread-attached'),
  attachedName: document.querySelector('[data-attached="name"]'),
  attachRemove: $('thread-attach-remove'),
  send: $('message-send'),
  error: $('thread-error'),
  keep: $('thread-keep'),
  link: $('thread-link'),
  copy: $('thread-copy-link'),
};

// Texts written out so the catalogue test finds every key.
const STATE_TEXT = {
  new: () => t('thread.state.new'),
  open: () => t('thread.state.open'),
  claimed: () => t('thread.state.claimed'),
  closed: () => t('thread.state.closed'),
};
const REFUSAL_TEXT = {
  message_limit: () => t('thread.error.limit'),
  thread_closed: () => t('thread.error.closed'),
  bad_thread_token: () => t('thread.error.token'),
  not_an_image: () => t('thread.error.not_media'),
  not_a_video: () => t('thread.error.not_media'),
  video_too_large: () => t('thread.error.too_large'),
  image_too_large: () => t('thread.error.too_large'),
  body_too_large: () => t('thread.error.too_large'),
  uploads_busy: () => t('thread.error.busy'),
  message_empty: () => t('thread.error.empty'),
};

/** The thread this device holds: {threadId, token, channel}, or null before the first message. */
let thread = null;
/** The message being sent: its client id is kept until it is stored, so a retry is one message. */
let pending = null;
let location = null;
let socket = null;
const log = new MessageLog($('message-log'), 'thread-message');

function load() {
  const fromLink = /^#([0-9a-f-]{36})\.([\w-]{20,128})$/.exec(window.location.hash);
  if (fromLink) {
    thread = { threadId: fromLink[1], token: fromLink[2], channel: null };
    save();
    return;
  }
  try {
    thread = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || 'null');
  } catch {
    thread = null;
  }
}

function save() {
  window.localStorage.setItem(STORAGE_KEY, JSON.stringify(thread));
}

function linkOf() {
  return `${window.location.origin}/thread#${thread.threadId}.${thread.token}`;
}

/** @param {'new' | 'open' | 'claimed' | 'closed'} state */
function setState(state) {
  ui.root.dataset.state = state;
  ui.state.dataset.state = state;
  ui.state.textContent = STATE_TEXT[state]();
  ui.setup.hidden = state !== 'new';
  ui.keep.hidden = state === 'new';
  const closed = state === 'closed';
  ui.input.disabled = closed;
  ui.attach.disabled = closed;
  ui.send.disabled = closed;
  ui.form.hidden = closed;
  if (thread) {
    ui.link.value = linkOf();
    if (window.location.hash !== `#${thread.threadId}.${thread.token}`) {
      window.history.replaceState(null, '', `/thread#${thread.threadId}.${thread.token}`);
    }
  }
  if (thread && thread.channel === 'internal_security') {
    ui.heading.textContent = t('thread.heading_misconduct');
  }
}

function showError(code) {
  ui.error.textContent = (REFUSAL_TEXT[code] || (() => t('thread.error.failed')))();
  ui.error.dataset.code = code;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
  delete ui.error.dataset.code;
}

/** A file's bytes over the token (the attachment routes take no cookie): a blob URL. */
async function attachmentUrl(url) {
  const response = await fetch(url, { headers: { [TOKEN_HEADER]: thread.token } });
  if (!response.ok) {
    throw new Error(String(response.status));
  }
  return URL.createObjectURL(await response.blob());
}

/** Shows one stored message once, in sequence order. */
function showMessage(message) {
  const mine = message.sender === 'citizen';
  const item = log.add(message, { who: mine ? t('thread.you') : t('thread.operator'), mine });
  if (!item) {
    return;
  }
  item.classList.toggle('chat-operator', !mine);
  ui.empty.hidden = true;
  if (message.kind && message.url) {
    attachmentUrl(message.url)
      .then((src) => item.append(attachmentElement(message.kind, src)))
      .catch((error) => console.warn('thread: attachment not loaded', error));
  }
}

function openSocket() {
  if (socket) {
    return;
  }
  socket = connect('/thread', (cb) => cb({ token: thread.token }));
  socket.on('connect', async () => {
    try {
      const reply = await request(socket, 'resume', { last_seq: 0 });
      reply.messages.forEach(showMessage);
      setState(reply.state);
    } catch (error) {
      console.warn('thread: resume', error);
    }
  });
  socket.on('connect_error', (error) => {
    const code = error && error.data && error.data.code;
    if (code === 'bad_thread_token') {
      showError(code);
    }
  });
  socket.on('event', (event) => {
    if (!event) {
      return;
    }
    if (event.type === 'thread.message') {
      showMessage(event);
    } else if (event.type === 'thread.state') {
      setState(event.state);
    }
  });
}

async function postJson(url, body, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw Object.assign(new Error('refused'), { code: (reply.error && reply.error.code) || '' });
  }
  return reply;
}

async function createThread() {
  const channel = document.querySelector('input[name="channel"]:checked').value;
  const body = { channel, language: document.documentElement.lang || 'en' };
  const contact = ui.contact.value.trim();
  if (contact) {
    body.contact = contact;
  }
  if (location) {
    Object.assign(body, location);
  }
  const reply = await postJson('/api/threads', body);
  thread = { threadId: reply.thread_id, token: reply.token, channel: reply.channel };
  save();
  setState('open');
  openSocket();
}

async function send(event) {
  event.preventDefault();
  clearError();
  const file = ui.attach.files && ui.attach.files[0];
  const text = ui.input.value.trim();
  if (!text && !file) {
    showError('message_empty');
    return;
  }
  if (!pending || pending.text !== text || pending.file !== file) {
    pending = { clientId: newClientId(), text, file };
  }
  ui.send.disabled = true;
  ui.send.dataset.state = 'sending';
  try {
    if (!thread) {
      await createThread();
    }
    const base = `/api/threads/${encodeURIComponent(thread.threadId)}`;
    let reply;
    if (file) {
      const form = new FormData();
      form.append('client_id', pending.clientId);
      form.append('body', text);
      form.append('file', file, file.name || (isClip(file) ? 'clip.mp4' : 'photo.jpg'));
      const response = await fetch(`${base}/attachments`, {
        method: 'POST',
        headers: { [TOKEN_HEADER]: thread.token, Accept: 'application/json' },
        body: form,
      });
      reply = await response.json().catch(() => ({}));
      if (!response.ok) {
        const code = (reply.error && reply.error.code) || (response.status === 413 ? 'body_too_large' : '');
        throw Object.assign(new Error('refused'), { code });
      }
    } else {
      reply = await postJson(`${base}/messages`, { client_id: pending.clientId, body: text }, {
        [TOKEN_HEADER]: thread.token,
      });
    }
    showMessage(reply);
    pending = null;
    // Clear only what was sent: the citizen may have written or picked more meanwhile.
    if (ui.input.value.trim() === text) {
      ui.input.value = '';
    }
    if (file && ui.attach.files && ui.attach.files[0] === file) {
      clearAttachment();
    }
  } catch (error) {
    console.warn('thread: not sent', error);
    showError(error.code || 'network');
  } finally {
    ui.send.disabled = ui.root.dataset.state === 'closed';
    delete ui.send.dataset.state;
  }
}

function clearAttachment() {
  ui.attach.value = '';
  ui.attached.hidden = true;
  ui.attachedName.textContent = '';
}

function shareLocation() {
  if (!navigator.geolocation) {
    ui.locationStatus.hidden = false;
    ui.locationStatus.textContent = t('thread.location_unavailable');
    return;
  }
  ui.locationStatus.hidden = false;
  ui.locationStatus.textContent = t('thread.location_finding');
  navigator.geolocation.getCurrentPosition(
    (position) => {
      location = {
        lat: position.coords.latitude,
        lon: position.coords.longitude,
        accuracy: Math.min(position.coords.accuracy, 1_000_000),
      };
      ui.locate.dataset.located = 'true';
      ui.locate.setAttribute('aria-pressed', 'true');
      ui.locationStatus.textContent = t('thread.location_shared');
    },
    () => {
      ui.locationStatus.textContent = t('thread.location_unavailable');
    },
    { enableHighAccuracy: true, timeout: 15_000, maximumAge: 60_000 },
  );
}

function bind() {
  ui.form.addEventListener('submit', send);
  ui.attach.addEventListener('change', () => {
    const file = ui.attach.files && ui.attach.files[0];
    ui.attached.hidden = !file;
    ui.attachedName.textContent = file
      ? `${isClip(file) ? t('chat.clip') : t('chat.photo')}: ${file.name}`
      : '';
  });
  ui.attachRemove.addEventListener('click', clearAttachment);
  ui.locate.addEventListener('click', shareLocation);
  ui.copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(ui.link.value);
      ui.copy.textContent = t('thread.copied');
    } catch {
      ui.link.select();
    }
  });
  const params = new URLSearchParams(window.location.search);
  if (params.get('channel') === 'internal_security') {
    $('thread-channel-misconduct').checked = true;
  }
}

async function main() {
  bind();
  await loadCatalog(document.documentElement.lang);
  load();
  if (thread) {
    setState('open');
    openSocket();
  } else {
    setState('new');
  }
  document.body.dataset.ready = 'true';
}

main();
