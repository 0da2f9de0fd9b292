// Handing a call on at the console (docs/transfers.md): the transfer dialog (T), the bar of a
// warm transfer or a conference this operator started (complete, cancel), and a call offered to
// this operator by name (accept, decline), with its note. The server settles every offer; the
// page only shows what it is told.
import { closeCall, openCall } from './console_call.js';
import { $, appendChat, errorText, live, page, placeText, renderButtons, setCallStatus } from './console_page.js';
import { t } from './i18n.js';
import { request } from './socket.js';

const parts = {
  dialog: /** @type {HTMLDialogElement} */ (document.getElementById('transfer-dialog')),
  form: /** @type {HTMLFormElement} */ (document.getElementById('transfer-form')),
  target: /** @type {HTMLSelectElement} */ ($('transfer-target')),
  people: /** @type {HTMLOptGroupElement} */ (document.querySelector('#transfer-target [data-group="people"]')),
  queues: /** @type {HTMLOptGroupElement} */ (document.querySelector('#transfer-target [data-group="queues"]')),
  note: /** @type {HTMLTextAreaElement} */ ($('transfer-note')),
  error: $('transfer-error'),
  bar: $('transfer-bar'),
  status: $('transfer-status'),
  complete: /** @type {HTMLButtonElement} */ ($('transfer-complete')),
  cancel: /** @type {HTMLButtonElement} */ ($('transfer-cancel')),
  offer: $('transfer-offer'),
  offerTitle: $('transfer-offer-title'),
  offerNote: $('transfer-offer-note'),
  offerCall: $('transfer-offer-call'),
  accept: /** @type {HTMLButtonElement} */ ($('offer-accept')),
  decline: /** @type {HTMLButtonElement} */ ($('offer-decline')),
  callNote: $('call-transfer-note'),
  leave: /** @type {HTMLButtonElement} */ ($('leave-call')),
};

// Texts by kind and state, written out so the catalogue test finds every key.
const KIND_TEXT = {
  warm: () => t('transfer.kind.warm'),
  cold: () => t('transfer.kind.cold'),
  conference: () => t('transfer.kind.conference'),
};
// The states routing and the wall know (the wall's own words).
const TARGET_STATE_TEXT = {
  available: () => t('wall.operator.available'),
  ringing: () => t('wall.operator.ringing'),
  in_call: () => t('wall.operator.in_call'),
  wrap_up: () => t('wall.operator.wrap_up'),
  away: () => t('wall.operator.away'),
  offline: () => t('wall.operator.offline'),
};
const ERROR_TEXT = {
  target_not_found: () => t('transfer.error.target_not_found'),
  target_disabled: () => t('transfer.error.target_disabled'),
  target_offline: () => t('transfer.error.target_offline'),
  target_busy: () => t('transfer.error.target_busy'),
  target_forbidden: () => t('transfer.error.target_forbidden'),
  offer_pending: () => t('transfer.error.offer_pending'),
  offer_gone: () => t('transfer.error.offer_gone'),
  offer_not_found: () => t('transfer.error.offer_gone'),
};

/** @param {any} error */
function refusal(error) {
  return Object.hasOwn(ERROR_TEXT, error.code) ? ERROR_TEXT[error.code]() : errorText(error);
}

/** The offer shown to this operator now, and the one this operator made for the open call. */
const state = {
  /** @type {any} */ incoming: null,
  /** @type {null | {offerId: number, callId: string, kind: string, to: string}} */ outgoing: null,
};

// --- the dialog ----------------------------------------------------------------------------

/** @param {string} value @param {string} text @param {boolean} [disabled] */
function option(value, text, disabled = false) {
  const item = document.createElement('option');
  item.value = value;
  item.textContent = text;
  item.disabled = disabled;
  return item;
}

async function openDialog() {
  const active = live.active;
  if (!active || active.guest || parts.dialog.open || !live.socket?.connected) {
    return;
  }
  parts.error.hidden = true;
  parts.people.replaceChildren();
  parts.queues.replaceChildren();
  parts.dialog.showModal();
  parts.target.focus();
  let reply;
  try {
    reply = await request(live.socket, 'transfer_targets', { call_id: active.callId });
  } catch (error) {
    showError(refusal(error));
    return;
  }
  for (const person of reply.people) {
    const text = `${person.username} · ${TARGET_STATE_TEXT[person.state]()}`;
    const item = option(`user:${person.username}`, text, person.state !== 'available');
    item.dataset.state = person.state;
    item.dataset.role = person.role;
    parts.people.append(item);
  }
  for (const channel of reply.queues) {
    parts.queues.append(option(`queue:${channel}`, t(`channel.${channel}`)));
  }
}

/** @param {string} text */
function showError(text) {
  parts.error.textContent = text;
  parts.error.hidden = false;
}

async function send() {
  const active = live.active;
  if (!active) {
    parts.dialog.close();
    return;
  }
  const [what, name] = parts.target.value.split(/:(.*)/s);
  if (!name) {
    showError(t('transfer.target_required'));
    parts.target.focus();
    return;
  }
  const checked = /** @type {HTMLInputElement | null} */ (parts.form.querySelector('input[name="kind"]:checked'));
  const kind = what === 'queue' ? 'cold' : (checked ? checked.value : 'warm');
  const body = { call_id: active.callId, kind, note: parts.note.value.trim() };
  if (what === 'queue') {
    body.target_channel = name;
  } else {
    body.target_user = name;
  }
  let reply;
  try {
    reply = await request(live.socket, 'transfer', body);
  } catch (error) {
    showError(refusal(error));
    return;
  }
  parts.note.value = '';
  parts.dialog.close();
  if (reply.call.state !== 'answered') {
    // Cold: this operator has left the call (its own event may have closed it already).
    if (live.active === active) {
      closeCall();
    }
    if (!live.active) {
      setCallStatus('transferred');
    }
    appendChat('system', what === 'queue' ? t('console.transferred') : t('transfer.sent_cold', { to: name }));
    return;
  }
  state.outgoing = { offerId: reply.offer_id, callId: active.callId, kind, to: name };
  showBar('offered');
}

// --- the bar of the offer this operator made -------------------------------------------------

const BAR_TEXT = {
  offered: (to) => t('transfer.bar.offered', { to }),
  accepted: (to) => t('transfer.bar.accepted', { to }),
};

/** @param {'offered' | 'accepted'} step */
function showBar(step) {
  const outgoing = state.outgoing;
  if (!outgoing) {
    return;
  }
  parts.bar.hidden = false;
  parts.bar.dataset.state = step;
  live.handingOn = true;
  renderButtons();
  parts.bar.dataset.kind = outgoing.kind;
  parts.status.textContent = `${KIND_TEXT[outgoing.kind]()}: ${BAR_TEXT[step](outgoing.to)}`;
  // A conference has nothing to complete: the guest leaves when they choose.
  parts.complete.hidden = outgoing.kind !== 'warm';
  parts.complete.disabled = step !== 'accepted';
  parts.cancel.hidden = outgoing.kind === 'conference' && step === 'accepted';
}

function hideBar() {
  state.outgoing = null;
  parts.bar.hidden = true;
  parts.bar.dataset.state = '';
  live.handingOn = false;
  renderButtons();
}

async function complete() {
  const outgoing = state.outgoing;
  if (!outgoing) {
    return;
  }
  parts.complete.disabled = true;
  try {
    await request(live.socket, 'transfer_complete', { call_id: outgoing.callId });
  } catch (error) {
    appendChat('system', refusal(error));
    parts.complete.disabled = false;
    return;
  }
  hideBar();
  if (live.active?.callId === outgoing.callId) {
    closeCall();
  }
  if (!live.active) {
    setCallStatus('transferred');
  }
  appendChat('system', t('transfer.completed', { to: outgoing.to }));
}

async function cancel() {
  const outgoing = state.outgoing;
  if (!outgoing) {
    return;
  }
  try {
    await request(live.socket, 'transfer_cancel', { call_id: outgoing.callId });
  } catch (error) {
    appendChat('system', refusal(error));
    return;
  }
  hideBar();
  appendChat('system', t('transfer.cancelled_by_me'));
}

// --- a call offered to this operator --------------------------------------------------------

/** @param {any} offer a transfer.offer event */
function showOffer(offer) {
  state.incoming = offer;
  parts.offer.hidden = false;
  parts.offer.dataset.offerId = String(offer.offer_id);
  parts.offer.dataset.kind = offer.kind;
  parts.offerTitle.textContent = t('transfer.offer_title', { by: offer.by, kind: KIND_TEXT[offer.kind]() });
  parts.offerNote.textContent = offer.note || t('transfer.no_note');
  const call = offer.call;
  parts.offerCall.textContent = `${t(`channel.${call.channel}`)} · ${call.language.toUpperCase()} · ${placeText(call)}`;
  parts.accept.disabled = false;
  parts.accept.focus();
}

function hideOffer() {
  state.incoming = null;
  parts.offer.hidden = true;
  parts.offer.dataset.offerId = '';
}

async function acceptOffer() {
  const offer = state.incoming;
  if (!offer) {
    return;
  }
  if (live.active && live.active.callId !== offer.call.call_id) {
    appendChat('system', t('transfer.busy_here'));
    return;
  }
  parts.accept.disabled = true;
  let reply;
  try {
    reply = await request(live.socket, 'offer_accept', { offer_id: offer.offer_id });
  } catch (error) {
    hideOffer();
    appendChat('system', refusal(error));
    return;
  }
  hideOffer();
  await openCall(reply.call.call_id, reply.call);
  if (live.active?.callId === reply.call.call_id) {
    live.active.guest = offer.kind !== 'cold';
    showCallNote(offer);
    renderButtons();
  }
}

async function declineOffer() {
  const offer = state.incoming;
  if (!offer) {
    return;
  }
  hideOffer();
  try {
    await request(live.socket, 'offer_decline', { offer_id: offer.offer_id });
  } catch (error) {
    appendChat('system', refusal(error));
  }
}

/** The note stays in view beside the call, and in its log. @param {any} offer */
function showCallNote(offer) {
  const text = t('transfer.note_from', { by: offer.by, note: offer.note || t('transfer.no_note') });
  parts.callNote.textContent = text;
  parts.callNote.hidden = false;
  appendChat('system', text);
}

/** A call that closes takes its note and its bar with it. */
export function forgetCall() {
  parts.callNote.hidden = true;
  parts.callNote.textContent = '';
  if (state.outgoing && state.outgoing.callId !== live.active?.callId) {
    hideBar();
  }
}

/**
 * A transfer event from the socket: true when it was one.
 * @param {any} event
 */
export function onTransferEvent(event) {
  if (event.type === 'transfer.offer') {
    showOffer(event);
    return true;
  }
  if (event.type !== 'transfer.update') {
    return false;
  }
  if (state.incoming && state.incoming.offer_id === event.offer_id && event.state !== 'offered') {
    if (event.state !== 'accepted') {
      appendChat('system', t('transfer.offer_withdrawn'));
    }
    hideOffer();
  }
  const outgoing = state.outgoing;
  if (outgoing && outgoing.offerId === event.offer_id) {
    if (event.state === 'accepted') {
      showBar('accepted');
    } else if (event.state !== 'completed') {
      hideBar();
      appendChat('system', event.state === 'cancelled' ? t('transfer.guest_left', { who: event.to }) : t('transfer.not_taken', { to: event.to }));
    }
  } else if (event.kind === 'cold' && event.to !== live.me && ['expired', 'declined'].includes(event.state)) {
    appendChat('system', t('transfer.back_in_queue', { to: event.to }));
  }
  const active = live.active;
  if (active && active.callId === event.call_id && event.to === live.me) {
    if (event.state === 'completed') {
      active.guest = false; // the call is this operator's now
      renderButtons();
    } else if (event.state === 'cancelled' && active.guest) {
      appendChat('system', t('transfer.kept', { by: event.by }));
      closeCall();
    }
  }
  return true;
}

/** Offers waiting for this operator, after a reload or a reconnect. */
export async function refreshOffers() {
  try {
    const reply = await request(live.socket, 'offers', {});
    const last = reply.offers[reply.offers.length - 1];
    if (last) {
      showOffer(last);
    } else {
      hideOffer();
    }
  } catch (error) {
    console.warn('console: offers', error);
  }
}

async function leave() {
  const active = live.active;
  if (!active || !active.guest) {
    return;
  }
  try {
    await request(live.socket, 'leave_call', { call_id: active.callId });
  } catch (error) {
    appendChat('system', refusal(error));
    return;
  }
  if (live.active === active) {
    closeCall();
  }
}

export function bindTransfer() {
  page.transfer.addEventListener('click', () => openDialog());
  parts.form.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  parts.target.addEventListener('change', () => {
    const queue = parts.target.value.startsWith('queue:');
    for (const input of parts.form.querySelectorAll('input[name="kind"]')) {
      const radio = /** @type {HTMLInputElement} */ (input);
      radio.disabled = queue && radio.value !== 'cold';
      if (queue && radio.value === 'cold') {
        radio.checked = true;
      }
    }
  });
  $('transfer-dialog-cancel').addEventListener('click', () => parts.dialog.close());
  parts.complete.addEventListener('click', () => complete());
  parts.cancel.addEventListener('click', () => cancel());
  parts.accept.addEventListener('click', () => acceptOffer());
  parts.decline.addEventListener('click', () => declineOffer());
  parts.leave.addEventListener('click', () => leave());
}
