// The console's keyboard shortcuts: A accept (the call ringing this operator first), M mute,
// S snapshot, T transfer, E end, R ready/available, W step away, D decline a ringing call, C the
// chat, Esc closes a dialog or leaves a field. A shortcut presses its button, so a disabled or
// hidden one does nothing; typing in a field never triggers one.
import { $, page } from './console_page.js';

/** Keys (lower case) to the buttons they press; C focuses the chat instead. */
const SHORTCUTS = {
  a: 'accept-call',
  m: 'mute',
  s: 'take-snapshot',
  e: 'end-call',
  t: 'transfer-call',
  r: 'status-ready',
  w: 'status-away',
  d: 'ring-decline',
};

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

export function bindShortcuts() {
  document.addEventListener('keydown', onKeyDown);
}
