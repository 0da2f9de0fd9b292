// A call's record (/archive/calls/{id}). Nothing is shown until the reader gives a reason: the
// record comes in the answer to it, with a view token that every recording, snapshot and photo
// fetch carries (so each of them is entered in the audit chain with that reason).
//
// Playback runs on the call's own clock: a segment's time t is its started_at + t. The marker is
// put where the caller was at that moment (the last fix before it), chat lines light up once
// their time is reached, and the segments play one after the other, the gaps between them shown
// on the timeline and said when playback jumps one.
import { attachmentElement } from './attachments.js';
import { CallerMap } from './basemap.js';
import { loadCatalog, t } from './i18n.js';
import { ApiError, L, fetchJson } from './threats_common.js';

const $ = (testid) => /** @type {HTMLElement} */ (document.querySelector(`[data-testid="${testid}"]`));
/** A jump shorter than this between two segments is a re-offer, not worth a notice. */
const GAP_NOTICE_MIN_MS = 1000;
/** Gaps longer than this are drawn on the timeline (shorter ones are the muxer's rounding). */
const GAP_DRAW_MIN_MS = 200;
const GAP_NOTICE_MS = 4000;

const root = /** @type {HTMLElement} */ (document.getElementById('record-root'));
const callId = root.dataset.callId || '';
const lang = document.documentElement.lang || 'en';
const ui = {
  form: /** @type {HTMLFormElement} */ (document.getElementById('justification-form')),
  reason: /** @type {HTMLInputElement} */ ($('justification')),
  error: $('justification-error'),
  submit: /** @type {HTMLButtonElement} */ ($('justification-submit')),
  body: $('record-body'),
  viewReason: $('view-reason'),
  video: /** @type {HTMLVideoElement} */ ($('playback')),
  empty: $('playback-empty'),
  timeline: $('record-timeline'),
  segment: $('playback-segment'),
  clock: /** @type {HTMLTimeElement} */ ($('playback-clock')),
  gap: $('gap-notice'),
  position: $('record-position'),
  chat: $('record-chat'),
  chatEmpty: $('record-chat-empty'),
  summary: $('record-summary'),
  present: $('record-present'),
  participants: $('record-participants'),
  images: $('record-images'),
  imagesEmpty: $('record-images-empty'),
  transitions: $('record-transitions'),
};

/** @type {any} */
let record = null;
let token = '';
/** @type {{segment: number, start: number, end: number, url: string, recovered: boolean}[]} */
let segments = [];
/** Segments deleted when their retention ended: shown on the timeline, not played. */
/** @type {{segment: number, start: number, end: number}[]} */
let purged = [];
let current = -1;
/** @type {{at: number, lat: number, lon: number, accuracy_m: number | null}[]} */
let track = [];
/** @type {{at: number, element: HTMLElement}[]} */
let chatLines = [];
/** @type {CallerMap | null} */
let map = null;
/** @type {any} */
let marker = null;
let cursor = /** @type {HTMLElement | null} */ (null);
let span = { start: 0, end: 1 };
let gapTimer = 0;

const ms = (iso) => (iso ? new Date(iso).getTime() : NaN);

function withView(path) {
  return `${path}?view=${encodeURIComponent(token)}`;
}

function csrfToken() {
  const field = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name="csrf_token"]'));
  return field ? field.value : '';
}

// --- the reason -------------------------------------------------------------------------------

const REASON_ERRORS = new Set([
  'reason_required',
  'reason_too_long',
  'call_not_found',
  'session_expired',
  'unauthorized',
  'csrf_failed',
]);

async function openRecord(event) {
  event.preventDefault();
  const reason = ui.reason.value.trim();
  if (!reason) {
    showReasonError('reason_required');
    ui.reason.focus();
    return;
  }
  ui.submit.disabled = true;
  try {
    const body = await fetchJson(`/api/archive/calls/${encodeURIComponent(callId)}/views`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
      body: JSON.stringify({ reason }),
    });
    show(body);
  } catch (error) {
    showReasonError(error instanceof ApiError ? error.code : 'network');
  } finally {
    ui.submit.disabled = false;
  }
}

function showReasonError(code) {
  ui.error.hidden = false;
  ui.error.dataset.code = code;
  ui.error.textContent = t(`record.error.${REASON_ERRORS.has(code) ? code : 'other'}`);
}

// --- the record ---------------------------------------------------------------------------------

function show(body) {
  record = body;
  token = body.view.token;
  ui.form.hidden = true;
  ui.body.hidden = false;
  root.dataset.state = 'open';
  ui.viewReason.dataset.entry = String(body.view.entry);
  ui.viewReason.textContent = t('record.opened_for', {
    reason: body.view.reason,
    entry: body.view.entry,
  });
  renderSummary();
  renderPresent();
  renderParticipants();
  renderTransitions();
  renderChat();
  renderImages();
  renderMap();
  renderPlayer();
  loadHold();
  setUpExport();
}

// --- the export bundle (its route: server/http/evidence.py) ------------------------------------

const EXPORT_ERRORS = new Set(['reason_required', 'reason_too_long', 'call_not_found']);

function setUpExport() {
  const button = /** @type {HTMLButtonElement | null} */ (document.querySelector('[data-testid="export-bundle"]'));
  if (!button) {
    return;
  }
  const reason = /** @type {HTMLInputElement} */ ($('export-reason'));
  const state = $('export-state');
  const error = $('export-error');
  reason.value = record.view.reason;
  button.addEventListener('click', async () => {
    const why = reason.value.trim();
    error.hidden = true;
    if (!why) {
      error.hidden = false;
      error.dataset.code = 'reason_required';
      error.textContent = t('record.export_error.reason_required');
      reason.focus();
      return;
    }
    button.disabled = true;
    state.dataset.state = 'working';
    state.textContent = t('record.export_working');
    try {
      const response = await fetch(`/api/calls/${encodeURIComponent(callId)}/export`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
        body: JSON.stringify({ reason: why }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new ApiError(response.status, body?.error?.code || 'other', '', body);
      }
      const blob = await response.blob();
      const disposition = response.headers.get('Content-Disposition') || '';
      const name = /filename="([^"]+)"/.exec(disposition)?.[1] || `call-${callId}.zip`;
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      state.dataset.state = 'done';
      state.textContent = t('record.export_done', { name });
    } catch (failure) {
      const code = failure instanceof ApiError ? failure.code : 'network';
      state.dataset.state = 'failed';
      state.textContent = '';
      error.hidden = false;
      error.dataset.code = code;
      error.textContent = t(`record.export_error.${EXPORT_ERRORS.has(code) ? code : 'other'}`);
    } finally {
      button.disabled = false;
    }
  });
}

// --- the legal hold (its routes: server/http/legal_holds.py) -----------------------------------

const hold = {
  panel: document.querySelector('[data-testid="legal-hold-panel"]'),
  state: $('legal-hold-state'),
  reason: /** @type {HTMLInputElement} */ ($('legal-hold-reason')),
  error: $('legal-hold-error'),
  button: /** @type {HTMLButtonElement} */ ($('legal-hold')),
  held: false,
};
const HOLD_ERRORS = new Set(['reason_required', 'reason_too_long', 'already_held', 'not_held']);

function holdUrl() {
  return `/api/calls/${encodeURIComponent(callId)}/legal-hold`;
}

function renderHold(body) {
  hold.held = Boolean(body.held);
  hold.state.dataset.held = String(hold.held);
  hold.state.textContent = hold.held
    ? t('record.hold_on', { since: when(body.since), by: body.by || '', reason: body.reason || '' })
    : t('record.hold_off');
  hold.button.textContent = t(hold.held ? 'record.hold_lift' : 'record.hold_set');
  hold.button.classList.toggle('btn-danger', hold.held);
  hold.button.disabled = false;
}

async function loadHold() {
  if (!hold.panel) {
    return;
  }
  hold.button.addEventListener('click', toggleHold);
  try {
    renderHold(await fetchJson(holdUrl()));
  } catch (error) {
    showHoldError(error instanceof ApiError ? error.code : 'network');
  }
}

async function toggleHold() {
  const reason = hold.reason.value.trim();
  if (!reason) {
    showHoldError('reason_required');
    hold.reason.focus();
    return;
  }
  hold.error.hidden = true;
  hold.button.disabled = true;
  try {
    const body = await fetchJson(holdUrl(), {
      method: hold.held ? 'DELETE' : 'PUT',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrfToken() },
      body: JSON.stringify({ reason }),
    });
    hold.reason.value = '';
    renderHold(body);
  } catch (error) {
    hold.button.disabled = false;
    showHoldError(error instanceof ApiError ? error.code : 'network');
  }
}

function showHoldError(code) {
  hold.error.hidden = false;
  hold.error.dataset.code = code;
  hold.error.textContent = t(`record.hold_error.${HOLD_ERRORS.has(code) ? code : 'other'}`);
}

function dd(list, term, value) {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const detail = document.createElement('dd');
  detail.textContent = value;
  list.append(dt, detail);
  return detail;
}

/** Evidence is read to the second. */
const dateTime = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'medium' });

function when(iso) {
  return iso ? dateTime.format(new Date(iso)) : '–';
}

function renderSummary() {
  const { call } = record;
  const list = ui.summary;
  list.replaceChildren();
  dd(list, t('archive.channel'), t(`channel.${call.channel}`));
  dd(list, t('record.state'), t(`archive.state.${call.state}`));
  dd(list, t('record.created'), when(call.created_at));
  dd(list, t('record.answered'), when(call.answered_at));
  dd(list, t('record.ended'), when(call.ended_at));
  dd(list, t('archive.operator'), call.operator || '–');
  dd(
    list,
    t('archive.disposition'),
    call.disposition ? t(`disposition.${call.disposition}`) : t('archive.no_disposition'),
  ).dataset.testid = 'record-disposition';
  dd(list, t('record.note'), call.note || '–').dataset.testid = 'record-note';
  if (call.marks.length) {
    dd(list, t('record.marks'), call.marks.map((m) => t(`call.mark.${m}`)).join(', '));
  }
}

function renderPresent() {
  ui.present.replaceChildren(
    ...record.present.map((person) => {
      const item = document.createElement('li');
      item.dataset.user = person.username;
      item.dataset.role = person.role;
      item.textContent = `${person.username} · ${t(`role.${person.role}`)}`;
      return item;
    }),
  );
}

// How each stay on the call began, written out so the catalogue test finds every key.
const JOINED_BY_TEXT = {
  answered: () => t('record.joined_by.answered'),
  invite: () => t('record.joined_by.invite'),
  warm: () => t('record.joined_by.warm'),
  cold: () => t('record.joined_by.cold'),
  conference: () => t('record.joined_by.conference'),
};

/** Who was on the call's media and chat, from when to when (transfers, conferences). */
function renderParticipants() {
  ui.participants.replaceChildren(
    ...(record.participants || []).map((stay) => {
      const item = document.createElement('li');
      item.dataset.user = stay.username;
      item.dataset.joinedBy = stay.joined_by;
      item.dataset.joinedAt = stay.joined_at;
      item.dataset.leftAt = stay.left_at || '';
      const how = Object.hasOwn(JOINED_BY_TEXT, stay.joined_by) ? JOINED_BY_TEXT[stay.joined_by]() : stay.joined_by;
      const until = stay.left_at ? when(stay.left_at) : t('record.still_on');
      item.textContent = `${stay.username} · ${t(`role.${stay.role}`)} · ${how} · ${when(stay.joined_at)} – ${until}`;
      return item;
    }),
  );
}

function renderTransitions() {
  ui.transitions.replaceChildren(
    ...record.transitions.map((change) => {
      const row = document.createElement('tr');
      const at = document.createElement('td');
      at.textContent = when(change.at);
      const what = document.createElement('td');
      const from = change.from ? t(`archive.state.${change.from}`) : '';
      what.textContent = from
        ? `${from} → ${t(`archive.state.${change.to}`)}`
        : t(`archive.state.${change.to}`);
      if (change.reason) {
        what.textContent += ` (${change.reason})`;
      }
      const who = document.createElement('td');
      who.textContent = change.actor === 'citizen' ? t('record.citizen') : change.actor;
      row.append(at, what, who);
      return row;
    }),
  );
}

function renderChat() {
  chatLines = record.chat.map((line) => {
    const item = document.createElement('li');
    item.className = 'record-line';
    item.dataset.sender = line.sender;
    item.dataset.at = line.at;
    item.dataset.reached = 'false';
    const head = document.createElement('span');
    head.className = 'record-line-head';
    const who = line.sender === 'citizen' ? t('record.citizen') : line.name || t('record.staff');
    head.textContent = `${new Date(line.at).toLocaleTimeString(lang)} · ${who}`;
    const text = document.createElement('span');
    text.className = 'chat-text';
    text.textContent = line.body;
    const seek = document.createElement('button');
    seek.type = 'button';
    seek.className = 'record-line-button';
    seek.append(head, text);
    seek.addEventListener('click', () => seekTo(ms(line.at)));
    item.append(seek);
    return { at: ms(line.at), element: item };
  });
  ui.chat.replaceChildren(...chatLines.map((line) => line.element));
  ui.chatEmpty.hidden = chatLines.length > 0;
}

function renderImages() {
  const items = [];
  for (const snapshot of record.snapshots) {
    items.push(
      imageItem(
        withView(`/api/calls/${encodeURIComponent(callId)}/snapshots/${snapshot.id}`),
        t('record.snapshot', { name: snapshot.taken_by || '' }),
        snapshot,
      ),
    );
  }
  for (const photo of record.photos) {
    items.push(
      imageItem(
        withView(`/api/calls/${encodeURIComponent(callId)}/photos/${photo.seq}`),
        t('record.photo'),
        photo,
      ),
    );
  }
  ui.images.replaceChildren(...items);
  ui.imagesEmpty.hidden = items.length > 0;
}

function imageItem(url, label, item) {
  const entry = document.createElement('li');
  entry.dataset.sha256 = item.sha256;
  if (item.purged_at) {
    entry.dataset.purged = 'true';
    entry.className = 'image-purged';
    entry.textContent = `${label} · ${when(item.at)} · ${t('record.image_purged')}`;
    return entry;
  }
  if (item.kind === 'video') {
    // A caller's video clip: its own player, and a caption that seeks the recording to it.
    const seek = document.createElement('button');
    seek.type = 'button';
    seek.className = 'image-button';
    seek.textContent = `${t('chat.clip')} · ${when(item.at)}`;
    seek.addEventListener('click', () => seekTo(ms(item.at)));
    entry.append(attachmentElement('video', url), seek);
    return entry;
  }
  const link = document.createElement('button');
  link.type = 'button';
  link.className = 'image-button';
  link.addEventListener('click', () => seekTo(ms(item.at)));
  const image = document.createElement('img');
  image.src = url;
  image.alt = label;
  image.loading = 'lazy';
  const caption = document.createElement('span');
  caption.textContent = `${label} · ${when(item.at)}`;
  link.append(image, caption);
  entry.append(link);
  return entry;
}

function renderMap() {
  track = record.track.map((fix) => ({ ...fix, at: ms(fix.at) }));
  map = new CallerMap(/** @type {HTMLElement} */ ($('record-map')));
  if (!track.length) {
    ui.position.textContent = t('record.no_location');
    return;
  }
  const points = track.map((fix) => L.latLng(fix.lat, fix.lon));
  L.polyline(points, { color: '#4da3ff', weight: 3, opacity: 0.8 }).addTo(map.map);
  marker = L.circleMarker(points[0], {
    radius: 9,
    color: '#ffffff',
    weight: 3,
    fillColor: '#e5484d',
    fillOpacity: 1,
  }).addTo(map.map);
  map.map.fitBounds(L.latLngBounds(points).pad(0.5), { maxZoom: map.fitZoom });
  placeMarker(track[0].at);
}

// --- playback --------------------------------------------------------------------------------

function renderPlayer() {
  purged = record.segments
    .filter((s) => s.purged_at)
    .map((s) => ({ segment: s.segment, start: ms(s.started_at), end: ms(s.ended_at || s.started_at) }));
  segments = record.segments
    .filter((s) => !s.purged_at)
    .map((s) => ({
      segment: s.segment,
      start: ms(s.started_at),
      end: ms(s.ended_at || s.started_at),
      url: withView(`/api/calls/${encodeURIComponent(callId)}/recordings/${s.segment}`),
      recovered: Boolean(s.recovered),
    }))
    .sort((a, b) => a.segment - b.segment);
  const call = record.call;
  const times = [ms(call.created_at), ms(call.ended_at), ...segments.flatMap((s) => [s.start, s.end])];
  const known = times.filter(Number.isFinite);
  span = { start: Math.min(...known), end: Math.max(...known, Math.min(...known) + 1) };
  renderTimeline();
  if (!segments.length) {
    ui.video.hidden = true;
    ui.empty.hidden = false;
    if (purged.length) {
      ui.empty.textContent = t('record.recording_purged');
    }
    return;
  }
  ui.video.addEventListener('timeupdate', onTime);
  ui.video.addEventListener('seeked', onTime);
  ui.video.addEventListener('ended', onEnded);
  ui.video.addEventListener('play', tick);
  load(0, 0, false);
}

function renderTimeline() {
  const width = span.end - span.start;
  const parts = [];
  let last = span.start;
  for (const [index, s] of segments.entries()) {
    if (s.start - last > GAP_DRAW_MIN_MS) {
      parts.push(gapPart(last, s.start, width));
    }
    const block = document.createElement('button');
    block.type = 'button';
    block.className = 'timeline-segment';
    block.dataset.segment = String(s.segment);
    block.style.left = `${((s.start - span.start) / width) * 100}%`;
    block.style.width = `${Math.max(0.5, ((s.end - s.start) / width) * 100)}%`;
    block.title = t('record.segment_of', { n: index + 1, count: segments.length });
    if (s.recovered) {
      block.classList.add('is-recovered');
      block.title += ` · ${t('record.segment_recovered')}`;
    }
    block.setAttribute('aria-label', block.title);
    block.addEventListener('click', () => load(index, 0, true));
    parts.push(block);
    last = Math.max(last, s.end);
  }
  if (span.end - last > GAP_DRAW_MIN_MS && segments.length) {
    parts.push(gapPart(last, span.end, width));
  }
  for (const s of purged) {
    const gone = document.createElement('span');
    gone.className = 'timeline-purged';
    gone.dataset.testid = 'timeline-purged';
    gone.style.left = `${((s.start - span.start) / width) * 100}%`;
    gone.style.width = `${Math.max(0.5, ((s.end - s.start) / width) * 100)}%`;
    gone.title = t('record.segment_purged', { n: s.segment });
    parts.push(gone);
  }
  cursor = document.createElement('span');
  cursor.className = 'timeline-cursor';
  parts.push(cursor);
  ui.timeline.replaceChildren(...parts);
}

function gapPart(from, to, width) {
  const gap = document.createElement('span');
  gap.className = 'timeline-gap';
  gap.dataset.testid = 'timeline-gap';
  gap.style.left = `${((from - span.start) / width) * 100}%`;
  gap.style.width = `${((to - from) / width) * 100}%`;
  gap.title = t('record.gap', { secs: Math.round((to - from) / 1000) });
  return gap;
}

/**
 * @param {number} index which segment
 * @param {number} offsetSecs where in it
 * @param {boolean} play start playing (a click), or keep the player's state
 */
function load(index, offsetSecs, play) {
  const target = segments[index];
  const wasPlaying = !ui.video.paused;
  if (index !== current) {
    current = index;
    ui.video.src = target.url;
    ui.video.dataset.segment = String(target.segment);
  }
  const start = () => {
    if (offsetSecs > 0) {
      ui.video.currentTime = offsetSecs;
    }
    if (play || wasPlaying) {
      ui.video.play().catch(() => {});
    }
  };
  if (ui.video.readyState >= 1 && index === current) {
    start();
  } else {
    ui.video.addEventListener('loadedmetadata', start, { once: true });
  }
  ui.segment.textContent = t('record.segment_of', { n: index + 1, count: segments.length });
  if (target.recovered) {
    ui.segment.textContent += ` · ${t('record.segment_recovered')}`;
  }
  for (const block of ui.timeline.querySelectorAll('.timeline-segment')) {
    block.classList.toggle('is-current', block.getAttribute('data-segment') === String(target.segment));
  }
  update(target.start + offsetSecs * 1000);
}

function onEnded() {
  if (current + 1 >= segments.length) {
    return;
  }
  const gapMs = segments[current + 1].start - segments[current].end;
  if (gapMs > GAP_NOTICE_MIN_MS) {
    ui.gap.hidden = false;
    ui.gap.textContent = t('record.gap_skipped', { secs: Math.round(gapMs / 1000) });
    clearTimeout(gapTimer);
    gapTimer = window.setTimeout(() => {
      ui.gap.hidden = true;
    }, GAP_NOTICE_MS);
  }
  load(current + 1, 0, true);
}

/** Seek to a moment of the call: into the segment that holds it, else the next one after. */
function seekTo(at) {
  if (!segments.length) {
    update(at);
    return;
  }
  let index = segments.findIndex((s) => at >= s.start && at <= s.end);
  let offset = index >= 0 ? (at - segments[index].start) / 1000 : 0;
  if (index < 0) {
    index = segments.findIndex((s) => s.start > at);
    if (index < 0) {
      index = segments.length - 1;
      offset = Math.max(0, (segments[index].end - segments[index].start) / 1000 - 0.1);
    }
  }
  load(index, offset, true);
}

function onTime() {
  if (current >= 0) {
    update(segments[current].start + ui.video.currentTime * 1000);
  }
}

/** While playing, follow every frame (timeupdate comes only every 250 ms or so). */
function tick() {
  onTime();
  if (!ui.video.paused && !ui.video.ended) {
    requestAnimationFrame(tick);
  }
}

/** Everything on the page to the call's moment `at` (ms since the epoch). */
function update(at) {
  if (!Number.isFinite(at)) {
    return;
  }
  ui.clock.dateTime = new Date(at).toISOString();
  ui.clock.textContent = new Date(at).toLocaleTimeString(lang);
  ui.video.dataset.at = new Date(at).toISOString();
  if (cursor) {
    cursor.style.left = `${Math.min(100, Math.max(0, ((at - span.start) / (span.end - span.start)) * 100))}%`;
  }
  placeMarker(at);
  let latest = -1;
  chatLines.forEach((line, index) => {
    const reached = line.at <= at;
    line.element.dataset.reached = String(reached);
    if (reached) {
      latest = index;
    }
  });
  chatLines.forEach((line, index) => {
    line.element.classList.toggle('is-current', index === latest);
  });
}

function placeMarker(at) {
  if (!track.length || !marker) {
    return;
  }
  let fix = track[0];
  for (const candidate of track) {
    if (candidate.at <= at) {
      fix = candidate;
    } else {
      break;
    }
  }
  marker.setLatLng([fix.lat, fix.lon]);
  const before = fix.at > at;
  marker.setStyle({ fillOpacity: before ? 0.35 : 1 });
  ui.position.dataset.lat = String(fix.lat);
  ui.position.dataset.lon = String(fix.lon);
  ui.position.dataset.at = new Date(fix.at).toISOString();
  ui.position.textContent = t(before ? 'record.position_first' : 'record.position', {
    lat: fix.lat.toFixed(5),
    lon: fix.lon.toFixed(5),
    accuracy: fix.accuracy_m == null ? '–' : Math.round(fix.accuracy_m),
    time: new Date(fix.at).toLocaleTimeString(lang),
  });
}

async function main() {
  await loadCatalog(lang);
  ui.form.addEventListener('submit', openRecord);
  ui.reason.focus();
  document.body.dataset.ready = 'true';
}

main();
