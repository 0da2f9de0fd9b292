// Operator console (/console): keyboard shortcuts, tabs, shift state and the call timer.
// The queue, media and chat plug in through `hooks` once signalling exists.
import { formatDuration, loadCatalog, t } from './i18n.js';

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const page = {
  shiftButton: $('start-shift'),
  shiftState: $('shift-state'),
  timer: $('call-timer'),
  chatInput: $('chat-input'),
  chatForm: document.getElementById('chat-form'),
  tabs: [...document.querySelectorAll('[role="tab"]')],
};

/** Keys (lower case) to the buttons they press; C focuses the chat instead. */
const SHORTCUTS = {
  a: 'accept-call',
  m: 'mute',
  s: 'take-snapshot',
  e: 'end-call',
};

const consoleState = { onShift: false, timerStartedMs: 0, timerId: 0 };

/** Filled by the live console module: `Object.assign(hooks, {...})`. */
export const hooks = {
  /** @param {boolean} onShift */
  shiftChanged: (onShift) => console.info('console: on shift', onShift),
  /** @param {string} text */
  sendChat: (text) => console.info('console: chat', text.length),
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
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || isTyping(event.target)) {
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
}

function bind() {
  document.addEventListener('keydown', onKeyDown);
  page.shiftButton.addEventListener('click', () => {
    // Browsers only let a page play sound after a user gesture: this click is that gesture.
    consoleState.onShift = !consoleState.onShift;
    renderShift();
    hooks.shiftChanged(consoleState.onShift);
  });
  const mute = $('mute');
  mute.addEventListener('click', () => {
    const muted = mute.getAttribute('aria-pressed') !== 'true';
    mute.setAttribute('aria-pressed', String(muted));
    mute.textContent = muted ? t('console.unmute') : t('console.mute');
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
}

async function main() {
  bind();
  await loadCatalog(document.documentElement.lang);
  renderShift();
  document.body.dataset.ready = 'true';
}

main();
