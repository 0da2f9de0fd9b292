// Photos and video clips in a chat or message log, the same on every page: a photo is an img,
// a clip a video player (playsinline for iOS, controls, no autoplay: a clip may be loud).

import { t } from './i18n.js';

/**
 * Whether a picked file goes to a clip route: the server sniffs the bytes again, this only
 * chooses the route (and the field name).
 * @param {File} file
 */
export function isClip(file) {
  return (file.type || '').startsWith('video/') || /\.(mp4|webm|mov|m4v)$/i.test(file.name || '');
}

/**
 * An img or a video for one attachment.
 * @param {'photo' | 'video'} kind
 * @param {string} src
 * @returns {HTMLElement}
 */
export function attachmentElement(kind, src) {
  if (kind === 'video') {
    const video = document.createElement('video');
    video.className = 'chat-clip';
    video.controls = true;
    video.preload = 'metadata';
    video.playsInline = true;
    video.setAttribute('playsinline', '');
    video.src = src;
    video.setAttribute('aria-label', t('chat.clip'));
    video.dataset.testid = 'chat-clip';
    return video;
  }
  const image = document.createElement('img');
  image.className = 'chat-photo';
  image.alt = t('chat.photo');
  image.src = src;
  image.dataset.testid = 'chat-photo';
  return image;
}
