// What this browser can give the call, said honestly: a page opened over plain HTTP or inside an
// app's own browser (Facebook, Instagram, Messenger) has no camera to offer, and the caller is
// told to open it in Chrome or Safari (with the link to copy) instead of silently getting a text
// call. A camera or microphone that fails is named for what happened (none, in use, refused),
// each with its own fix.
import { t } from './i18n.js';

// Webviews of apps that open links inside themselves: no getUserMedia, or one that never asks.
const IN_APP_RE = /FBAN|FBAV|FB_IAB|FBIOS|Instagram|Messenger/i;

/**
 * Why this page cannot open the camera here, or '' when it can try.
 * @returns {'' | 'in_app' | 'insecure'}
 */
export function browserTrouble() {
  if (IN_APP_RE.test(navigator.userAgent)) {
    return 'in_app';
  }
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    return 'insecure';
  }
  return '';
}

/**
 * Shows the "open this page in your browser" help on the start screen.
 * @param {HTMLElement} box the open-in-browser section
 * @param {'in_app' | 'insecure'} reason
 */
export function showBrowserHelp(box, reason) {
  box.dataset.reason = reason;
  for (const text of box.querySelectorAll('[data-reason-text]')) {
    if (text instanceof HTMLElement) {
      text.hidden = text.dataset.reasonText !== reason;
    }
  }
  const link = box.querySelector('[data-testid="page-link"]');
  const status = box.querySelector('[data-testid="copy-status"]');
  if (link instanceof HTMLInputElement) {
    link.value = window.location.href;
  }
  box.querySelector('[data-testid="copy-link"]')?.addEventListener('click', async () => {
    const copied = link instanceof HTMLInputElement && (await copyText(link));
    if (status) {
      status.textContent = copied ? t('citizen.browser.copied') : t('citizen.browser.copy_failed');
    }
  });
  box.hidden = false;
}

/**
 * Copies the link: the Clipboard API where the page may use it (never on plain HTTP), else the
 * selected field and the old copy command.
 * @param {HTMLInputElement} field
 */
async function copyText(field) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(field.value);
      return true;
    }
  } catch (error) {
    console.info('citizen: clipboard refused, selecting the link', error);
  }
  field.focus();
  field.select();
  try {
    return document.execCommand('copy');
  } catch {
    return false;
  }
}

/** One line of help: where this browser keeps its permissions. */
export function permissionHelp() {
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

/**
 * What getUserMedia's refusal means: no such device, a device another app holds, or no
 * permission.
 * @param {unknown} error
 * @returns {'not_found' | 'in_use' | 'denied'}
 */
export function mediaFailure(error) {
  const name = error instanceof DOMException || error instanceof Error ? error.name : '';
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') {
    return 'not_found';
  }
  if (name === 'NotReadableError' || name === 'AbortError' || name === 'TrackStartError') {
    return 'in_use';
  }
  return 'denied';
}

/**
 * The chat line for a camera (and maybe microphone) that failed, with its fix.
 * @param {'not_found' | 'in_use' | 'denied'} failure
 * @param {boolean} microphoneToo nothing at all works: only the chat is left
 */
export function mediaFailureText(failure, microphoneToo) {
  if (failure === 'not_found') {
    return microphoneToo ? t('call.media.none_found') : t('call.media.no_camera');
  }
  if (failure === 'in_use') {
    return microphoneToo ? t('call.media.devices_in_use') : t('call.media.camera_in_use');
  }
  const what = microphoneToo ? t('call.perm.media_denied') : t('call.perm.camera_denied');
  return `${what} ${permissionHelp()}`;
}
