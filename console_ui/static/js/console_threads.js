// The console's Messages tab: citizens' message threads without a call, in a list with their
// unread counts, kept live by `thread.updated` on the console's socket (the channel's queue
// room: the internal-security channel's threads reach only its own consoles). An operator
// claims a thread (exactly one wins), answers in it, and closes it with a disposition, or turns
// it into a video-call invite or a threat report. Keys on this tab: J/K move, T claim, Y reply,
// X close.
import { attachmentElement } from './attachments.js';
import { formatDuration, t } from './i18n.js';
import { MessageLog } from './message_log.js';
import { newClientId } from './socket.js';
import { ApiError, categoryLabel, fetchJson, fillCategorySelect, loadCategories } from './threats_common.js';

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

const ui = {
  panel: $('messages-panel'),
  tab: $('tab-messages'),
  tabCount: $('tab-messages-count'),
  list: $('thread-list'),
  empty: $('threads-empty'),
  unreadTotal: $('threads-unread'),
  detailEmpty: $('thread-detail-empty'),
  body: $('thread-detail-body'),
  title: $('thread-title'),
  state: $('thread-detail-state'),
  facts: $('thread-facts'),
  claim: $('claim-thread'),
  holder: $('thread-holder'),
  replyForm: document.getElementById('thread-reply-form'),
  reply: $('thread-reply-input'),
  inviteForm: document.getElementById('thread-invite-form'),
  invitePhone: $('thread-invite-phone'),
  reportForm: document.getElementById('thread-report-form'),
  reportCategory: $('thread-report-category'),
  closeForm: document.getElementById('thread-close-form'),
  disposition: $('thread-disposition'),
  closeNote: $('thread-close-note'),
  status: $('thread-status'),
};

// Texts written out so the catalogue test finds every key.
const STATE_TEXT = {
  open: () => t('threads.state.open'),
  claimed: () => t('threads.state.claimed'),
  closed: () => t('threads.state.closed'),
};
const CHANNEL_TEXT = {
  police: () => t('threads.channel.police'),
  internal_security: () => t('threads.channel.internal_security'),
};
const MARK_TEXT = {
  flooding: () => t('threads.mark.flooding'),
  suspected_abuse: () => t('threads.mark.suspected_abuse'),
};
const REFUSAL_TEXT = {
  thread_taken: () => t('threads.error.taken'),
  thread_not_yours: () => t('threads.error.not_yours'),
  thread_closed: () => t('threads.error.closed'),
  no_location: () => t('threads.error.no_location'),
  invalid_phone: () => t('threads.error.phone'),
  rate_limited: () => t('threads.error.rate'),
  role_forbidden: () => t('threads.error.role'),
};

const me = document.querySelector('[data-testid="whoami-username"]')?.textContent?.trim() || '';
// Supervisors read the channel's threads; operators (and internal security) take them.
const mayClaim = document.querySelector('[data-testid="whoami-role"]')?.dataset.role !== 'supervisor';

/** thread_id -> ThreadSummary, as the server last said. */
const threads = new Map();
let selected = null;
/** The open thread's messages shown. */
const log = new MessageLog($('thread-log'), 'thread-log-item');

function csrfToken() {
  const input = document.querySelector('input[name="csrf_token"]');
  return input ? input.value : '';
}

function post(url, body = {}) {
  return fetchJson(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
    body: JSON.stringify(body),
  });
}

function say(text, failed = false) {
  ui.status.textContent = text;
  ui.status.dataset.state = failed ? 'failed' : 'ok';
}

function refusal(error) {
  const code = error instanceof ApiError ? error.code : 'network';
  say((REFUSAL_TEXT[code] || (() => t('threads.error.failed')))(), true);
}

function ordered() {
  // Open threads first (oldest waiting first), then claimed, then closed (newest first).
  const rank = { open: 0, claimed: 1, closed: 2 };
  return [...threads.values()].sort((a, b) => {
    if (rank[a.state] !== rank[b.state]) {
      return rank[a.state] - rank[b.state];
    }
    return a.state === 'closed'
      ? b.last_at.localeCompare(a.last_at)
      : a.created_at.localeCompare(b.created_at);
  });
}

function waited(summary) {
  const secs = Math.max(0, (Date.now() - Date.parse(summary.created_at)) / 1000);
  return formatDuration(Math.floor(secs));
}

function renderList() {
  const items = ordered();
  ui.list.replaceChildren(
    ...items.map((summary) => {
      const item = document.createElement('li');
      item.className = 'thread-item';
      item.dataset.testid = 'thread-item';
      item.dataset.threadId = summary.thread_id;
      item.dataset.state = summary.state;
      item.dataset.channel = summary.channel;
      item.dataset.unread = String(summary.unread);
      item.dataset.marks = summary.marks.join(' ');
      item.tabIndex = 0;
      item.setAttribute('role', 'button');
      item.setAttribute('aria-selected', String(summary.thread_id === selected));
      const who = document.createElement('span');
      who.className = 't-who';
      who.textContent = `${CHANNEL_TEXT[summary.channel]()} · ${summary.language.toUpperCase()}`;
      const unread = document.createElement('span');
      unread.className = 't-unread';
      unread.dataset.testid = 'thread-unread';
      unread.textContent = String(summary.unread);
      unread.hidden = summary.unread === 0;
      unread.setAttribute('aria-label', t('threads.unread', { n: summary.unread }));
      const state = document.createElement('span');
      state.className = 't-state';
      state.textContent =
        summary.state === 'claimed' && summary.claimed_by
          ? t('threads.claimed_by', { name: summary.claimed_by })
          : STATE_TEXT[summary.state]();
      const age = document.createElement('span');
      age.className = 't-age';
      age.textContent = waited(summary);
      const preview = document.createElement('span');
      preview.className = 't-preview';
      preview.textContent = summary.preview === 'photo'
        ? t('chat.photo')
        : summary.preview === 'video'
          ? t('chat.clip')
          : summary.preview;
      item.append(who, unread, state, age, preview);
      if (summary.marks.length) {
        const marks = document.createElement('span');
        marks.className = 't-marks';
        marks.textContent = summary.marks.map((mark) => (MARK_TEXT[mark] || (() => mark))()).join(', ');
        item.append(marks);
      }
      item.addEventListener('click', () => openThread(summary.thread_id));
      item.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          openThread(summary.thread_id);
        }
      });
      return item;
    }),
  );
  ui.empty.hidden = items.length > 0;
  const unread = items.filter((s) => s.state !== 'closed').reduce((sum, s) => sum + s.unread, 0);
  const waiting = items.filter((s) => s.state === 'open').length;
  ui.tabCount.hidden = unread + waiting === 0;
  ui.tabCount.textContent = String(Math.max(unread, waiting));
  ui.unreadTotal.textContent = unread ? t('threads.unread', { n: unread }) : '';
}

function fact(label, value) {
  const dt = document.createElement('dt');
  dt.textContent = label;
  const dd = document.createElement('dd');
  dd.textContent = value;
  return [dt, dd];
}

function renderDetail() {
  const summary = selected && threads.get(selected);
  ui.detailEmpty.hidden = Boolean(summary);
  ui.body.hidden = !summary;
  if (!summary) {
    return;
  }
  ui.body.dataset.threadId = summary.thread_id;
  ui.title.textContent = `${CHANNEL_TEXT[summary.channel]()} · ${summary.language.toUpperCase()}`;
  ui.state.dataset.state = summary.state;
  ui.state.textContent = STATE_TEXT[summary.state]();
  const facts = [...fact(t('threads.waited'), waited(summary))];
  if (summary.contact) {
    facts.push(...fact(t('threads.contact'), summary.contact));
  }
  if (summary.lat !== null && summary.lon !== null) {
    const where = `${summary.lat.toFixed(5)}, ${summary.lon.toFixed(5)}`;
    const accuracy = summary.accuracy ? ` (±${Math.round(summary.accuracy)} m)` : '';
    facts.push(...fact(t('threads.location'), where + accuracy));
  }
  if (summary.report_id) {
    facts.push(...fact(t('threads.report_made'), `#${summary.report_id}`));
  }
  if (summary.disposition) {
    // The disposition's words as the close form's list has them.
    const option = [...ui.disposition.options].find((o) => o.value === summary.disposition);
    facts.push(...fact(t('console.disposition'), option ? option.text : summary.disposition));
  }
  ui.facts.replaceChildren(...facts);
  const mine = summary.state === 'claimed' && summary.claimed_by === me;
  ui.claim.hidden = summary.state !== 'open' || !mayClaim;
  ui.claim.disabled = summary.state !== 'open';
  ui.holder.textContent =
    summary.state === 'claimed' && summary.claimed_by
      ? t('threads.claimed_by', { name: summary.claimed_by })
      : '';
  for (const form of [ui.replyForm, ui.inviteForm, ui.reportForm, ui.closeForm]) {
    form.hidden = !mine;
  }
}

function showMessage(message) {
  const operator = message.sender === 'operator';
  const who = operator ? message.sender_name || t('threads.operator') : t('threads.citizen');
  const item = log.add(message, { who, mine: operator });
  if (item && message.kind && message.url) {
    item.append(attachmentElement(message.kind, message.url));
    item.dataset.sha256 = message.sha256 || '';
  }
}

/** The open thread as stored: its summary and every message (the database is the record). */
async function loadThread(threadId) {
  const body = await fetchJson(`/api/threads/${encodeURIComponent(threadId)}`);
  if (selected !== threadId) {
    return;
  }
  threads.set(threadId, body.thread);
  body.messages.forEach(showMessage);
  renderList();
  renderDetail();
  const summary = body.thread;
  if (summary.state === 'claimed' && summary.claimed_by === me && summary.unread > 0) {
    markRead(threadId);
  }
}

async function markRead(threadId) {
  try {
    const reply = await post(`/api/threads/${encodeURIComponent(threadId)}/read`);
    threads.set(threadId, reply.thread);
    renderList();
  } catch (error) {
    console.warn('messages: read', error);
  }
}

async function openThread(threadId) {
  if (selected !== threadId) {
    selected = threadId;
    log.clear();
    say('');
  }
  renderList();
  renderDetail();
  try {
    await loadThread(threadId);
  } catch (error) {
    refusal(error);
  }
}

async function claim() {
  if (!selected) {
    return;
  }
  const threadId = selected;
  ui.claim.disabled = true;
  try {
    const reply = await post(`/api/threads/${encodeURIComponent(threadId)}/claim`);
    threads.set(threadId, reply.thread);
    say(t('threads.claimed_yours'));
    await loadThread(threadId);
    ui.reply.focus();
  } catch (error) {
    refusal(error);
    await loadThread(threadId).catch(() => {});
  }
}

async function sendReply(event) {
  event.preventDefault();
  const text = ui.reply.value.trim();
  if (!text || !selected) {
    return;
  }
  const threadId = selected;
  const clientId = newClientId();
  try {
    const reply = await post(`/api/threads/${encodeURIComponent(threadId)}/reply`, {
      client_id: clientId,
      body: text,
    });
    showMessage(reply);
    ui.reply.value = '';
    say('');
  } catch (error) {
    refusal(error);
  }
}

async function invite(event) {
  event.preventDefault();
  const phone = ui.invitePhone.value.trim();
  try {
    const reply = await post(`/api/threads/${encodeURIComponent(selected)}/invite`, phone ? { phone } : {});
    say(phone ? t('threads.invited_sms') : t('threads.invited_link'));
    ui.invitePhone.value = '';
    await loadThread(selected);
    return reply;
  } catch (error) {
    refusal(error);
    return null;
  }
}

async function report(event) {
  event.preventDefault();
  const category = ui.reportCategory.value;
  if (!category) {
    ui.reportCategory.focus();
    return;
  }
  try {
    const reply = await post(`/api/threads/${encodeURIComponent(selected)}/report`, {
      category,
      description: '',
    });
    threads.set(selected, reply.thread);
    say(t('threads.reported', { id: reply.report.id, category: categoryLabel(category) }));
    renderList();
    renderDetail();
  } catch (error) {
    refusal(error);
  }
}

async function close(event) {
  event.preventDefault();
  const disposition = ui.disposition.value;
  if (!disposition) {
    ui.disposition.focus();
    say(t('console.disposition_required'), true);
    return;
  }
  const note = ui.closeNote.value.trim();
  try {
    const reply = await post(`/api/threads/${encodeURIComponent(selected)}/close`, {
      disposition,
      ...(note ? { note } : {}),
    });
    threads.set(selected, reply.thread);
    ui.closeNote.value = '';
    ui.disposition.value = '';
    say(t('threads.closed_yours'));
    renderList();
    renderDetail();
  } catch (error) {
    refusal(error);
  }
}

async function refresh() {
  try {
    const body = await fetchJson('/api/threads');
    threads.clear();
    for (const summary of body.threads) {
      threads.set(summary.thread_id, summary);
    }
    renderList();
    renderDetail();
    if (selected && threads.has(selected)) {
      await loadThread(selected);
    }
  } catch (error) {
    console.warn('messages: list', error);
  }
}

/** @param {{type: string, thread: object}} event */
function onEvent(event) {
  if (!event || event.type !== 'thread.updated') {
    return;
  }
  const summary = event.thread;
  threads.set(summary.thread_id, summary);
  renderList();
  if (summary.thread_id === selected) {
    renderDetail();
    if (summary.last_seq > log.lastSeq) {
      loadThread(selected).catch((error) => console.warn('messages: load', error));
    }
  }
}

function isTyping(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))
  );
}

/** J/K move through the list, T claims, Y goes to the reply, X closes: on this tab only (R and
 * W are the operator's status everywhere, so the reply is not R). */
function onKeyDown(event) {
  if (
    ui.panel.hidden ||
    event.ctrlKey ||
    event.metaKey ||
    event.altKey ||
    isTyping(event.target) ||
    document.querySelector('dialog[open]')
  ) {
    return;
  }
  const key = event.key.toLowerCase();
  if (key === 'j' || key === 'k') {
    event.preventDefault();
    const items = ordered();
    if (!items.length) {
      return;
    }
    const at = items.findIndex((s) => s.thread_id === selected);
    const next = at < 0 ? 0 : Math.min(items.length - 1, Math.max(0, at + (key === 'j' ? 1 : -1)));
    openThread(items[next].thread_id).then(() => {
      ui.list.querySelector(`[data-thread-id="${items[next].thread_id}"]`)?.focus();
    });
  } else if (key === 't' && !ui.claim.hidden && !ui.claim.disabled) {
    event.preventDefault();
    claim();
  } else if (key === 'y' && !ui.replyForm.hidden) {
    event.preventDefault();
    ui.reply.focus();
  } else if (key === 'x' && !ui.closeForm.hidden) {
    event.preventDefault();
    ui.disposition.focus();
  }
}

/** @param {import('/static/vendor/socket.io-client/socket.io.esm.min.js').Socket} socket */
export async function initMessages(socket) {
  ui.claim.addEventListener('click', claim);
  ui.replyForm.addEventListener('submit', sendReply);
  ui.inviteForm.addEventListener('submit', invite);
  ui.reportForm.addEventListener('submit', report);
  ui.closeForm.addEventListener('submit', close);
  document.addEventListener('keydown', onKeyDown);
  socket.on('event', onEvent);
  // After a reconnect the list is read again: events missed meanwhile are not replayed.
  socket.on('connect', refresh);
  window.setInterval(renderList, 30_000);
  fillCategorySelect(ui.reportCategory, await loadCategories([]));
  await refresh();
  ui.panel.dataset.ready = 'true';
}
