// Citizen page (/): the start screen and the call panel. No network yet: the live call
// (POST /api/calls, Socket.IO /citizen, WebRTC) plugs into the hooks below.
import { loadCatalog, t } from './i18n.js';

// State texts, written out so the catalogue test can find every key.
const STATE_TEXT = {
  idle: () => t('call.state.idle'),
  connecting: () => t('call.state.connecting'),
  queued: () => t('call.state.queued'),
  answered: () => t('call.state.answered'),
  reconnecting: () => t('call.state.reconnecting'),
  ended: () => t('call.state.ended'),
};

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const page = {
  start: document.getElementById('start'),
  misconduct: document.getElementById('misconduct'),
  panel: document.getElementById('call-panel'),
  state: $('call-state'),
  hint: $('call-hint'),
  localVideo: $('local-video'),
  remoteMedia: $('remote-media'),
  mute: $('mute'),
  chatForm: document.getElementById('chat-form'),
  chatInput: $('chat-input'),
  chatLog: $('chat-log'),
  photoInput: $('photo-input'),
};

/** The call as this page knows it; the live feature replaces `hooks` and reads this. */
const call = { channel: 'police', mode: 'video', state: 'idle', muted: false };

/**
 * Hooks for the live call. Each one is called by the UI; the defaults only log.
 * The live-call module sets them: `Object.assign(hooks, {...})`.
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
}

/** @param {{channel: string, mode: string}} request */
function startCall(request) {
  call.channel = request.channel;
  call.mode = request.mode;
  page.start.hidden = true;
  page.misconduct.hidden = true;
  page.panel.hidden = false;
  page.panel.dataset.mode = request.mode;
  page.panel.dataset.channel = request.channel;
  setCallState('connecting');
  (request.mode === 'text' ? page.chatInput : page.state).focus?.();
  hooks.startCall(request);
}

function endCall() {
  setCallState('ended');
  hooks.endCall();
}

function bind() {
  for (const button of document.querySelectorAll('button[data-mode][data-channel]')) {
    button.addEventListener('click', () =>
      startCall({ channel: button.dataset.channel, mode: button.dataset.mode }),
    );
  }
  $('end-call').addEventListener('click', endCall);
  $('switch-camera').addEventListener('click', () => hooks.switchCamera());
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
    if (!text) {
      return;
    }
    appendChat('me', text);
    page.chatInput.value = '';
    hooks.sendChat(text);
  });
  $('send-photo').addEventListener('click', () => page.photoInput.click());
  page.photoInput.addEventListener('change', () => {
    const [file] = page.photoInput.files || [];
    if (file) {
      appendChat('me', t('chat.photo_sent', { name: file.name }));
      hooks.sendPhoto(file);
    }
    page.photoInput.value = '';
  });
}

async function main() {
  bind();
  await loadCatalog(document.documentElement.lang);
  if (call.state !== 'idle') {
    setCallState(call.state); // a tap that came before the texts: show them now
  }
  document.body.dataset.ready = 'true';
}

main();
