// The invite page (/invite#<token>): an operator texted this link while on the phone with the
// caller. One tap redeems the token (read after '#', which no request carries) for a video
// call already answered by that operator, and the call page picks it up from sessionStorage as
// it does after a reload. A link used before, too old or unknown says so in plain words.
import { loadCatalog, t } from './i18n.js';

const STORAGE_KEY = 'lifeline.call';
const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const ui = {
  box: $('invite-state'),
  message: $('invite-message'),
  join: $('invite-join'),
  instead: $('invite-call-instead'),
};

// Texts of each state, written out so the catalogue test can find every key.
const STATE_TEXT = {
  ready: () => t('invite.intro'),
  joining: () => t('invite.joining'),
  used: () => t('invite.used'),
  expired: () => t('invite.expired'),
  invalid: () => t('invite.invalid'),
  failed: () => t('invite.failed'),
};
const REFUSALS = { invite_used: 'used', invite_expired: 'expired', invite_invalid: 'invalid' };

/** @param {keyof STATE_TEXT} state */
function setState(state) {
  ui.box.dataset.state = state;
  ui.message.textContent = STATE_TEXT[state]();
  const over = state === 'used' || state === 'expired' || state === 'invalid';
  ui.join.hidden = over;
  ui.join.disabled = state === 'joining';
  ui.instead.hidden = !over;
}

/** @param {string} token */
async function join(token) {
  setState('joining');
  let response;
  let reply = {};
  try {
    response = await fetch('/api/invites/redeem', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ token }),
    });
    reply = await response.json().catch(() => ({}));
  } catch (error) {
    console.warn('invite: not redeemed', error);
    setState('failed');
    return;
  }
  if (!response.ok) {
    const code = (reply.error && reply.error.code) || '';
    setState(REFUSALS[code] || 'failed');
    return;
  }
  const saved = {
    callId: reply.call_id,
    token: reply.token,
    iceServers: reply.ice_servers || [],
    lastSeq: 0,
    pending: [],
    channel: reply.channel,
    mode: reply.mode,
  };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(saved));
  // Replace this page in the history: the spent link is not one Back away.
  window.location.replace(`/?lang=${encodeURIComponent(reply.language)}`);
}

async function main() {
  await loadCatalog(document.documentElement.lang);
  const token = window.location.hash.slice(1);
  // Another language keeps the link's token (after '#', which the switch's links lack).
  for (const link of document.querySelectorAll('a[hreflang]')) {
    link.href = `${link.getAttribute('href')}${window.location.hash}`;
  }
  if (!/^[A-Za-z0-9_-]{20,128}$/.test(token)) {
    setState('invalid');
  } else {
    setState('ready');
    ui.join.addEventListener('click', () => join(token));
  }
  document.body.dataset.ready = 'true';
}

main();
