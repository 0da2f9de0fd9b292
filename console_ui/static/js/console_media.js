// The open call's media at the console: the caller's video and voice from the call's media
// session, the operator's microphone back (asked once, muted on demand). The link itself, its
// retries and its watch, is media_link.js's.
import { appendChat, live, page } from './console_page.js';
import { t } from './i18n.js';
import { ConsoleLink } from './console_link.js';
import { MediaLink } from './media_link.js';
import { request } from './socket.js';

/** A media link that stops delivering this long is replaced (ICE alone would take ~30 s). */
const MEDIA_STALL_MS = 5000;

/** The caller's media may not have reached the server yet (`no_media`): ask again this often. */
const NO_MEDIA_RETRY_MS = 1500;

const MIC_PROMPT_TIMEOUT_MS = 10_000;

/** @type {RTCIceServer[]} */
let iceServers = [];
/** @type {MediaStream | null} */
let mic = null;
let micAsked = false;
let muted = false;
/** A supervisor's voice, when one barges in: played apart from the caller's. */
const supervisorVoice = document.createElement('audio');
supervisorVoice.autoplay = true;
supervisorVoice.dataset.testid = 'supervisor-voice';
document.body.append(supervisorVoice);

/** The server's ICE servers, given to every peer connection explicitly. */
export async function loadIceServers() {
  try {
    const response = await fetch('/api/ice-servers', { credentials: 'same-origin' });
    if (response.ok) {
      iceServers = (await response.json()).ice_servers || [];
    }
  } catch (error) {
    console.warn('console: ice servers', error);
  }
}

/** The operator's microphone, asked once; without it the operator still sees and hears. */
async function microphone() {
  if (mic || micAsked) {
    return mic;
  }
  micAsked = true;
  try {
    const stream = await Promise.race([
      navigator.mediaDevices.getUserMedia({ audio: true }),
      new Promise((_, reject) =>
        window.setTimeout(() => reject(new Error('timeout')), MIC_PROMPT_TIMEOUT_MS),
      ),
    ]);
    mic = /** @type {MediaStream} */ (stream);
    mic.getAudioTracks().forEach((track) => {
      track.enabled = !muted;
    });
  } catch (error) {
    console.warn('console: no microphone', error);
    appendChat('system', t('console.no_microphone'));
  }
  return mic;
}

/**
 * What the next offer needs: the open call's video from the caller, audio both ways (the
 * microphone asked on the first one). Nothing without a call, for a text call, or offline.
 * @returns {Promise<import('./media_link.js').MediaPlan | null>}
 */
async function mediaPlan() {
  const active = live.active;
  if (!active || active.summary.mode === 'text' || !live.socket?.connected) {
    return null;
  }
  const microphoneStream = await microphone();
  const remote = new MediaStream();
  let voiceLine = null;
  return {
    iceServers: iceServers || [],
    setup: (peer) => {
      peer.addTransceiver('video', { direction: 'recvonly' });
      const track = microphoneStream && microphoneStream.getAudioTracks()[0];
      if (track) {
        peer.addTransceiver(track, { direction: 'sendrecv', streams: [microphoneStream] });
      } else {
        peer.addTransceiver('audio', { direction: 'recvonly' });
      }
      // A second voice: a supervisor who speaks to the call (barge-in).
      voiceLine = peer.addTransceiver('audio', { direction: 'recvonly' });
    },
    sendOffer: (offer) => request(live.socket, 'media_offer', { call_id: active.callId, ...offer }),
    sendIce: (candidate) => request(live.socket, 'media_ice', { call_id: active.callId, ...candidate }),
    onTrack: (event) => {
      if (event.transceiver === voiceLine) {
        supervisorVoice.srcObject = new MediaStream([event.track]);
        supervisorVoice.play().catch(() => {});
        return;
      }
      remote.addTrack(event.track);
      page.video.srcObject = remote;
      page.video.play().catch(() => {});
    },
    onOpen: (pc) => link.opened(pc),
    onFailure: (error, current) => {
      if (current && error.code !== 'no_media') {
        console.warn('console: media offer failed', error);
      }
    },
  };
}

/** The caller's rung on the degradation ladder and how their media arrives here. */
const link = new ConsoleLink({
  element: /** @type {HTMLElement} */ (document.querySelector('[data-testid="link-quality"]')),
  paused: /** @type {HTMLElement} */ (document.querySelector('[data-testid="video-paused"]')),
  call: () => (live.active ? { callId: live.active.callId, socket: live.socket } : null),
});

/** The open call's media: renewed on a failed or stalled link, on media.lost, when the caller is back. */
const media = new MediaLink({
  plan: mediaPlan,
  retryMs: { no_media: NO_MEDIA_RETRY_MS },
  stallMs: MEDIA_STALL_MS,
  onState: (state) => {
    page.videoBox.dataset.media = state;
  },
  onClose: () => link.closed(),
});

/**
 * Asks for the microphone when the shift starts, so that the first call's media never waits
 * for the browser's permission prompt (the offer needs to know whether it sends audio).
 */
export function prepareMicrophone() {
  microphone();
}

/** A new link for the open call in place of the old one (none without a video call). */
export function startMedia() {
  media.start();
}

/** Lets the call's media go. */
export function closeMedia() {
  media.close();
  link.reset();
}

/**
 * The caller's page reports its rung and quality (`call.link`).
 * @param {{rung: import('./link_quality.js').Rung | null, quality: import('./link_quality.js').Quality}} event
 */
export function onCallerLink(event) {
  link.fromCaller(event);
}

/** @param {boolean} on */
export function setMuted(on) {
  muted = on;
  mic?.getAudioTracks().forEach((track) => {
    track.enabled = !on;
  });
}
