// Supervisor wall (/wall): the live queue of the channels this role may see, the operators, today's
// figures and a live thumbnail of every call, all pushed by the server on the /console socket (the
// server filters channels by role). Every (re)connect opens the wall again with `wall`, which
// answers from the database: what was missed while away is never patched up from old events.
// A call can be watched and heard from here (silent monitor), and spoken to (barge-in).
import { formatDuration, loadCatalog, t } from './i18n.js';
import { MediaLink } from './media_link.js';
import { notRecording, showNotRecording } from './recording_state.js';
import { connect, followSessionEnd, request } from './socket.js';

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const clock = $('wall-clock');
const grid = $('wall-calls');
const operatorList = $('operators');
/** A thumbnail older than this is dimmed: the call's picture has stopped coming. */
const STALE_THUMBNAIL_MS = 6000;
const MONITOR_STALL_MS = 5000;
const NO_MEDIA_RETRY_MS = 1500;

/** What the page knows, all of it from the server. */
const wall = {
  /** @type {any} */ socket: null,
  targetSecs: 10,
  /** @type {Map<string, any>} */ calls: new Map(),
  /** @type {Map<string, HTMLLIElement>} */ items: new Map(),
  /** @type {Map<string, {src: string, at: number}>} */ thumbnails: new Map(),
  /** @type {any[] | null} */ operators: null,
  /** @type {Map<string, any>} */ figures: new Map(),
  /** @type {Map<string, any>} */ charts: new Map(),
  /** Server time minus this page's clock, ms: waits are counted on the server's time. */
  skewMs: 0,
};

function nowMs() {
  return Date.now() + wall.skewMs;
}

// Times on the wall are the centre's (TIME_ZONE), whatever the zone of the screen's browser.
const timeZone = document.documentElement.dataset.timeZone || undefined;

function tickClock() {
  clock.textContent = new Date().toLocaleTimeString(document.documentElement.lang, {
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZone,
  });
}

/** Seconds since an ISO time, on the server's clock. @param {string} iso */
function since(iso) {
  return Math.max(0, Math.round((nowMs() - Date.parse(iso)) / 1000));
}

/** @param {number | null | undefined} secs */
function secsText(secs) {
  return secs === null || secs === undefined ? '–' : formatDuration(Math.round(secs));
}

// --- the queue's figures ---------------------------------------------------------------------

/**
 * @param {string} channel
 * @param {string} testid
 */
function figureOf(channel, testid) {
  return document.querySelector(`[data-testid="${testid}"][data-channel="${channel}"]`);
}

function renderQueues() {
  for (const element of document.querySelectorAll('[data-testid="queue-count"]')) {
    const channel = element.dataset.channel;
    const waiting = [...wall.calls.values()].filter((c) => c.channel === channel && c.state === 'queued');
    const absent = waiting.filter((c) => c.caller_connected === false);
    element.textContent = String(waiting.length);
    const note = figureOf(channel, 'queue-absent');
    note.dataset.count = String(absent.length);
    note.hidden = absent.length === 0;
    note.textContent = t('wall.not_connected_count', { count: absent.length });
    // The longest wait of a caller who is there: a page that never connected is not a caller.
    const present = waiting.filter((c) => c.caller_connected !== false);
    figureOf(channel, 'queue-longest-wait').textContent = formatDuration(
      Math.max(0, ...present.map((c) => since(c.created_at))),
    );
    figureOf(channel, 'operators-available').textContent =
      wall.operators === null ? '–' : String(wall.operators.filter((o) => o.state === 'available').length);
  }
}

// --- today's figures -------------------------------------------------------------------------

/** @param {any} figures */
function renderFigures(figures) {
  const channel = figures.channel;
  figureOf(channel, 'figure-offered').textContent = String(figures.offered);
  figureOf(channel, 'figure-answered').textContent = String(figures.answered);
  figureOf(channel, 'figure-abandoned').textContent = String(figures.abandoned);
  const inTarget = figureOf(channel, 'figure-in-target');
  const percent = figures.in_target_percent;
  inTarget.dataset.percent = percent === null ? '' : String(percent);
  inTarget.textContent = percent === null ? '–' : t('wall.percent', { value: Math.round(percent) });
  inTarget.classList.toggle('figure-bad', percent !== null && percent < 80);
  for (const [testid, value] of [
    ['figure-avg-wait', figures.avg_wait_secs],
    ['figure-longest-wait', figures.longest_wait_secs],
    ['figure-avg-talk', figures.avg_talk_secs],
  ]) {
    const element = figureOf(channel, testid);
    element.dataset.secs = value === null ? '' : String(value);
    element.textContent = secsText(value);
  }
  $('answer-target').textContent = t('wall.target', { secs: Math.round(figures.target_secs) });
  drawHours(figures);
}

/** The day's offered calls per hour, answered and abandoned stacked (Chart.js, a global). */
function drawHours(figures) {
  const Chart = /** @type {any} */ (window).Chart;
  const box = figureOf(figures.channel, 'figure-hours');
  if (!Chart || !box) {
    return;
  }
  const byHour = new Map(figures.hours.map((h) => [h.hour, h]));
  const hours = [...Array(24).keys()];
  const series = (pick) => hours.map((h) => (byHour.has(h) ? pick(byHour.get(h)) : 0));
  const data = {
    labels: hours.map((h) => String(h).padStart(2, '0')),
    datasets: [
      { label: t('wall.fig.answered'), data: series((h) => h.answered), backgroundColor: '#3fb26b' },
      { label: t('wall.fig.abandoned'), data: series((h) => h.abandoned), backgroundColor: '#e5534b' },
      {
        label: t('wall.fig.other'),
        data: series((h) => h.offered - h.answered - h.abandoned),
        backgroundColor: '#d9a300',
      },
    ],
  };
  box.setAttribute(
    'aria-label',
    `${t('wall.fig.per_hour')}: ${figures.hours.map((h) => `${h.hour}:00 ${h.offered}`).join(', ')}`,
  );
  const existing = wall.charts.get(figures.channel);
  if (existing) {
    existing.data = data;
    existing.update('none');
    return;
  }
  const canvas = document.createElement('canvas');
  box.replaceChildren(canvas);
  const styles = getComputedStyle(document.body);
  Chart.defaults.font.family = styles.fontFamily;
  Chart.defaults.color = styles.color;
  wall.charts.set(
    figures.channel,
    new Chart(canvas, {
      type: 'bar',
      data,
      options: {
        animation: false,
        maintainAspectRatio: false,
        responsive: true,
        plugins: { legend: { display: true, position: 'right', labels: { boxWidth: 12 } } },
        scales: {
          x: { stacked: true, grid: { display: false } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } },
        },
      },
    }),
  );
}

// --- the calls -------------------------------------------------------------------------------

/** The call's place, as the wall can say it without a map: rounded coordinates and accuracy. */
function areaOf(call) {
  if (call.lat === null || call.lat === undefined) {
    return t('wall.no_location');
  }
  const accuracy = call.accuracy ? ` ±${Math.round(call.accuracy)} m` : '';
  return `${call.lat.toFixed(3)}, ${call.lon.toFixed(3)}${accuracy}`;
}

/** @param {any} call */
function waitClass(call) {
  if (call.state !== 'queued') {
    return 'answered';
  }
  if (call.caller_connected === false) {
    return 'absent';
  }
  return since(call.created_at) > wall.targetSecs ? 'late' : 'waiting';
}

/** @param {string} callId */
function newItem(callId) {
  const item = document.createElement('li');
  item.dataset.testid = 'wall-call';
  item.dataset.callId = callId;
  item.innerHTML = `
    <img class="wall-call-thumb" data-testid="call-thumbnail" alt="" width="320" height="180">
    <div class="wall-call-body">
      <strong class="wall-call-title"></strong>
      <span class="badge wall-call-situation" data-testid="wall-call-situation" hidden></span>
      <span class="wall-call-state"></span>
      <span class="wall-call-time" data-testid="wall-call-wait"></span>
      <span class="wall-call-area" data-testid="wall-call-area"></span>
      <span class="wall-call-caller" data-testid="wall-call-caller"></span>
      <span class="wall-call-operator"></span>
      <span class="badge wall-call-marks" data-testid="wall-call-marks" hidden></span>
      <span class="badge not-recording-badge" data-testid="wall-not-recording" hidden></span>
      <span class="badge wall-reconnecting" data-testid="wall-reconnecting" hidden></span>
      <button type="button" class="btn btn-secondary wall-call-monitor" data-testid="monitor-call"></button>
    </div>`;
  item.querySelector('[data-testid="monitor-call"]').addEventListener('click', () => startMonitor(callId));
  return item;
}

/** @param {any} call @param {HTMLLIElement} item */
function fillItem(call, item) {
  const kind = waitClass(call);
  item.className = `wall-call wall-call-${call.state} wall-call-${kind}`;
  item.dataset.state = call.state;
  item.dataset.wait = kind;
  item.dataset.callerConnected = String(call.caller_connected !== false);
  const marks = call.marks || [];
  item.dataset.marks = marks.join(' ');
  const q = (selector) => item.querySelector(selector);
  const mode = call.mode === 'text' ? t('wall.mode.text') : t('wall.mode.video');
  q('.wall-call-title').textContent = `${t(`channel.${call.channel}`)} · ${call.language.toUpperCase()} · ${mode}`;
  q('.wall-call-state').textContent = call.state === 'queued' ? t('wall.waiting') : t('wall.in_call');
  q('.wall-call-time').textContent = formatDuration(since(call.answered_at || call.created_at));
  q('.wall-call-area').textContent = areaOf(call);
  // Whether the caller's page is there, while they wait (the queue is told when it changes).
  const caller = q('.wall-call-caller');
  caller.hidden = call.state !== 'queued';
  caller.textContent = call.caller_connected === false ? t('wall.caller_absent') : t('wall.caller_present');
  // A waiting call that rings someone says whom (automatic distribution, docs/routing.md).
  const rung = call.state === 'queued' && call.ringing;
  q('.wall-call-operator').textContent = rung ? t('wall.ringing', { operator: call.ringing }) : call.operator || '';
  item.dataset.ringing = rung ? call.ringing : '';
  const situation = q('.wall-call-situation');
  item.dataset.situation = call.situation || '';
  situation.hidden = !call.situation;
  situation.textContent = call.situation ? t(`situation.${call.situation}`) : '';
  showNotRecording(q('[data-testid="wall-not-recording"]'), call);
  item.dataset.recording = String(!notRecording(call));
  // Its media node went silent (killed, say): until the caller's page places the media anew.
  const reconnecting = q('[data-testid="wall-reconnecting"]');
  item.dataset.media = call.media_lost ? 'reconnecting' : 'ok';
  reconnecting.hidden = !call.media_lost;
  reconnecting.textContent = call.media_lost ? t('wall.reconnecting') : '';
  const badge = q('.wall-call-marks');
  badge.hidden = marks.length === 0;
  badge.textContent = marks.map((m) => t(`call.mark.${m}`)).join(' · ');
  const monitor = q('[data-testid="monitor-call"]');
  const watchable = call.state === 'answered' && call.mode === 'video';
  monitor.disabled = !watchable || monitoring.callId === call.call_id;
  monitor.textContent = monitoring.callId === call.call_id ? t('wall.monitoring') : t('wall.monitor');
  const thumb = wall.thumbnails.get(call.call_id);
  const img = q('[data-testid="call-thumbnail"]');
  img.hidden = !thumb;
  if (thumb) {
    if (img.getAttribute('src') !== thumb.src) {
      img.setAttribute('src', thumb.src);
      img.dataset.at = String(thumb.at);
    }
    img.classList.toggle('stale', Date.now() - thumb.at > STALE_THUMBNAIL_MS || Boolean(call.media_lost));
    img.alt = t('wall.thumbnail_of', { operator: call.operator || '–' });
  }
}

function render() {
  renderQueues();
  // Real callers first, oldest first; then pages that are not connected; marked calls last (as on
  // the consoles).
  const later = (call) => ((call.marks || []).length > 0 ? 2 : 0) + (call.caller_connected === false ? 1 : 0);
  const ordered = [...wall.calls.values()].sort(
    (a, b) => later(a) - later(b) || Date.parse(a.created_at) - Date.parse(b.created_at),
  );
  for (const [callId, item] of wall.items) {
    if (!wall.calls.has(callId)) {
      item.remove();
      wall.items.delete(callId);
      wall.thumbnails.delete(callId);
    }
  }
  ordered.forEach((call, index) => {
    let item = wall.items.get(call.call_id);
    if (!item) {
      item = newItem(call.call_id);
      wall.items.set(call.call_id, item);
    }
    fillItem(call, item);
    if (grid.children[index] !== item) {
      grid.insertBefore(item, grid.children[index] || null);
    }
  });
}

// --- the operators ---------------------------------------------------------------------------

function renderOperators() {
  if (wall.operators === null) {
    return;
  }
  operatorList.replaceChildren(
    ...wall.operators.map((operator) => {
      const item = document.createElement('li');
      item.className = `operator operator-${operator.state}`;
      item.dataset.testid = 'operator-state';
      item.dataset.user = operator.username;
      item.dataset.state = operator.state;
      const who = document.createElement('span');
      who.className = 'operator-who';
      const name = document.createElement('strong');
      name.textContent = operator.username;
      // The languages they speak (set on /admin): what routing matches a caller's with.
      const skills = document.createElement('span');
      skills.className = 'operator-skills';
      skills.dataset.testid = 'operator-skills';
      skills.textContent = (operator.skills || []).map((code) => code.toUpperCase()).join(' ');
      who.append(name, skills);
      const state = document.createElement('span');
      state.className = 'operator-state';
      state.textContent = t(`wall.operator.${operator.state}`);
      // Away: their reason, or the ring they let pass ("missed a call at 14:05").
      const note = document.createElement('span');
      note.className = 'operator-note';
      note.dataset.testid = 'operator-note';
      note.textContent = operator.state === 'away' ? noteOf(operator) : '';
      note.hidden = !note.textContent;
      const time = document.createElement('span');
      time.className = 'operator-since';
      time.dataset.testid = 'operator-since';
      time.textContent = operator.since ? formatDuration(since(operator.since)) : '';
      item.append(who, state, note, time);
      return item;
    }),
  );
}

/** An away operator's note, in the wall's language where the server set it (a missed ring). */
function noteOf(operator) {
  if (operator.missed_at) {
    const time = new Date(operator.missed_at).toLocaleTimeString(document.documentElement.lang, {
      hour: '2-digit',
      minute: '2-digit',
      hour12: false,
      timeZone,
    });
    return t('wall.missed_call', { time });
  }
  return operator.note || '';
}

// --- events ----------------------------------------------------------------------------------

/** @param {any} reply the `wall` answer: everything, from the database */
function rebuild(reply) {
  wall.targetSecs = reply.target_secs;
  wall.calls.clear();
  for (const call of reply.calls) {
    wall.calls.set(call.call_id, call);
  }
  wall.operators = reply.operators;
  for (const figures of reply.figures) {
    wall.figures.set(figures.channel, figures);
    renderFigures(figures);
  }
  renderOperators();
  render();
}

/** Everything the wall shows, read again (on a new socket, and when the node says to). */
async function reload() {
  rebuild(await request(wall.socket, 'wall', {}));
}

/** @param {any} event */
function onEvent(event) {
  if (!event) {
    return;
  }
  if (event.type === 'console.resync') {
    // The node's bus to the others was away: calls made or answered there never reached us.
    reload().catch((error) => console.warn('wall: resync', error));
    return;
  }
  if (event.type === 'queue.call_added' || event.type === 'queue.call_updated') {
    wall.calls.set(event.call.call_id, event.call);
  } else if (event.type === 'queue.call_removed') {
    const call = wall.calls.get(event.call_id);
    if (call && event.reason === 'answered') {
      call.state = 'answered';
      call.operator = event.by || null;
      call.answered_at = new Date(nowMs()).toISOString();
    } else {
      wall.calls.delete(event.call_id);
      if (monitoring.callId === event.call_id) {
        stopMonitor();
      }
    }
  } else if (event.type === 'location' && wall.calls.has(event.call_id)) {
    // A waiting call's newest position (the queue gets them while the call waits).
    Object.assign(wall.calls.get(event.call_id), { lat: event.lat, lon: event.lon, accuracy: event.accuracy });
  } else if (event.type === 'wall.update') {
    wall.operators = event.operators;
    wall.figures.set(event.channel, event.figures);
    renderFigures(event.figures);
    renderOperators();
  } else if (event.type === 'wall.thumbnail') {
    wall.thumbnails.set(event.call_id, { src: `data:image/jpeg;base64,${event.jpeg_base64}`, at: Date.now() });
    wall.skewMs = Date.parse(event.at) - Date.now();
  } else if (event.type === 'call.people' && event.call_id === monitoring.callId) {
    showMonitorState(event);
  } else if (event.type === 'media.lost' && event.call_id === monitoring.callId) {
    monitorLink.start();
  } else {
    return;
  }
  render();
}

// --- silent monitor and barge-in -------------------------------------------------------------

const monitorPanel = $('monitor-panel');
const monitorVideo = /** @type {HTMLVideoElement} */ ($('monitor-video'));
const monitorVoice = /** @type {HTMLAudioElement} */ ($('monitor-voice'));
const bargeButton = $('barge-in');
/** @type {{callId: string | null, barging: boolean, mic: MediaStream | null, voiceSender: RTCRtpSender | null, iceServers: RTCIceServer[]}} */
const monitoring = { callId: null, barging: false, mic: null, voiceSender: null, iceServers: [] };

/**
 * The supervisor's link to the call's media: the caller's video and voice, the operator's voice
 * on a second audio line, and a line for the supervisor's own voice that stays silent until
 * barge-in puts the microphone on it (no new offer: the sender's track is replaced).
 * @returns {import('./media_link.js').MediaPlan | null}
 */
function monitorPlan() {
  const callId = monitoring.callId;
  if (!callId || !wall.socket?.connected) {
    return null;
  }
  const remote = new MediaStream();
  let voiceSender = null;
  let operatorLine = null;
  return {
    iceServers: monitoring.iceServers,
    setup: (peer) => {
      peer.addTransceiver('video', { direction: 'recvonly' });
      voiceSender = peer.addTransceiver('audio', { direction: 'sendrecv' }).sender;
      operatorLine = peer.addTransceiver('audio', { direction: 'recvonly' });
    },
    sendOffer: (offer) => request(wall.socket, 'media_offer', { call_id: callId, ...offer }),
    sendIce: (candidate) => request(wall.socket, 'media_ice', { call_id: callId, ...candidate }),
    onTrack: (event) => {
      if (event.transceiver === operatorLine) {
        monitorVoice.srcObject = new MediaStream([event.track]);
        monitorVoice.play().catch(() => {});
        return;
      }
      remote.addTrack(event.track);
      monitorVideo.srcObject = remote;
      monitorVideo.muted = false;
      monitorVideo.play().catch(() => {});
    },
    onOpen: () => {
      monitoring.voiceSender = voiceSender;
      if (monitoring.barging && monitoring.mic) {
        voiceSender.replaceTrack(monitoring.mic.getAudioTracks()[0]).catch(() => {});
      }
    },
    onFailure: (error, current) => {
      if (current && error.code !== 'no_media') {
        console.warn('wall: monitor offer failed', error);
        $('monitor-state').textContent = t('wall.monitor_failed');
      }
    },
  };
}

const monitorLink = new MediaLink({
  plan: monitorPlan,
  retryMs: { no_media: NO_MEDIA_RETRY_MS },
  stallMs: MONITOR_STALL_MS,
  onState: (state) => {
    monitorPanel.dataset.media = state;
  },
  onClose: () => {
    monitoring.voiceSender = null;
  },
});

/** @param {any} people a `call.people` event or the monitor's answer */
function showMonitorState(people) {
  const roles = people.roles || [];
  const names = roles.map((role) => t(`wall.people.${role}`)).join(' · ');
  $('monitor-state').textContent = monitoring.barging ? t('wall.speaking', { people: names }) : t('wall.listening', { people: names });
}

/** @param {string} callId */
async function startMonitor(callId) {
  if (monitoring.callId) {
    await stopMonitor();
  }
  const call = wall.calls.get(callId);
  monitoring.callId = callId;
  monitoring.barging = false;
  monitorPanel.hidden = false;
  monitorPanel.dataset.callId = callId;
  bargeButton.setAttribute('aria-pressed', 'false');
  bargeButton.textContent = t('wall.barge_in');
  $('monitor-title').textContent = `${t('wall.monitoring')} · ${call?.operator || ''}`;
  $('monitor-state').textContent = t('wall.monitor_connecting');
  render();
  try {
    const reply = await request(wall.socket, 'monitor', { call_id: callId, on: true });
    showMonitorState(reply);
  } catch (error) {
    console.warn('wall: monitor refused', error);
    $('monitor-state').textContent = t('wall.monitor_failed');
    return;
  }
  monitorLink.start();
}

async function stopMonitor() {
  const callId = monitoring.callId;
  monitorLink.close();
  monitoring.callId = null;
  monitoring.barging = false;
  monitoring.mic?.getTracks().forEach((track) => track.stop());
  monitoring.mic = null;
  monitorPanel.hidden = true;
  monitorVideo.srcObject = null;
  monitorVoice.srcObject = null;
  render();
  if (callId && wall.socket?.connected) {
    await request(wall.socket, 'monitor', { call_id: callId, on: false }).catch(() => {});
  }
}

async function toggleBarge() {
  const callId = monitoring.callId;
  if (!callId) {
    return;
  }
  const on = !monitoring.barging;
  if (on && !monitoring.mic) {
    try {
      monitoring.mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      console.warn('wall: no microphone', error);
      $('monitor-state').textContent = t('wall.no_microphone');
      return;
    }
  }
  try {
    const reply = await request(wall.socket, 'barge', { call_id: callId, on });
    monitoring.barging = on;
    await monitoring.voiceSender?.replaceTrack(on ? monitoring.mic.getAudioTracks()[0] : null);
    bargeButton.setAttribute('aria-pressed', String(on));
    bargeButton.textContent = on ? t('wall.barge_out') : t('wall.barge_in');
    showMonitorState(reply);
  } catch (error) {
    console.warn('wall: barge-in refused', error);
    $('monitor-state').textContent = t('wall.monitor_failed');
  }
}

async function loadIceServers() {
  try {
    const response = await fetch('/api/ice-servers', { credentials: 'same-origin' });
    if (response.ok) {
      monitoring.iceServers = (await response.json()).ice_servers || [];
    }
  } catch (error) {
    console.warn('wall: ice servers', error);
  }
}

async function main() {
  tickClock();
  window.setInterval(tickClock, 15_000);
  await loadCatalog(document.documentElement.lang);
  await loadIceServers();
  bargeButton.addEventListener('click', toggleBarge);
  $('monitor-stop').addEventListener('click', () => stopMonitor());
  const socket = connect('/console');
  wall.socket = socket;
  followSessionEnd(socket);
  socket.on('event', onEvent);
  socket.on('connect', async () => {
    try {
      await reload();
      document.body.dataset.live = 'true';
      if (monitoring.callId) {
        // A new socket: say again who is watching, and link again.
        await request(socket, 'monitor', { call_id: monitoring.callId, on: true });
        monitorLink.start();
      }
    } catch (error) {
      console.warn('wall: unavailable', error);
    }
  });
  socket.on('disconnect', () => {
    document.body.dataset.live = 'false';
  });
  window.setInterval(() => {
    render();
    renderOperators();
  }, 1000);
  document.body.dataset.ready = 'true';
}

main();
