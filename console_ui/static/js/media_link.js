// A call page's media link: WebRTC to the call's media session on the server. One offer,
// trickled candidates, a watch on the link (its connection state and, if asked, the inbound
// counters), and a new offer when it fails or stalls. A page that loses its link makes a NEW peer
// connection (aiortc terminates DTLS in-process, so an ICE restart cannot move a call between
// nodes). The citizen's page and the console each hold one MediaLink.

/** How often the watchdog reads getStats. */
const STATS_INTERVAL_MS = 1000;
/** A link "disconnected" this long is replaced by a new one (ICE alone would take ~30 s). */
const DISCONNECTED_GRACE_MS = 2500;
/** A refused or lost offer is tried again after this, unless its error code says otherwise. */
const RETRY_MS = 1500;

/**
 * Opens a peer connection to the server and negotiates it. The offer goes at once; candidates
 * found meanwhile wait for the answer (the server may handle events concurrently, and a
 * candidate for a peer it has not made yet would be lost), then trickle.
 * @param {object} options
 * @param {RTCIceServer[]} options.iceServers the server's list, always explicit
 * @param {(pc: RTCPeerConnection) => void} options.setup adds the transceivers
 * @param {(offer: {type: 'offer', sdp: string}) => Promise<{sdp: string}>} options.sendOffer
 * @param {(candidate: {candidate: string, sdpMid: string | null, sdpMLineIndex: number | null}) => Promise<unknown>} options.sendIce
 * @param {(event: RTCTrackEvent) => void} [options.onTrack]
 * @param {(state: RTCPeerConnectionState) => void} [options.onState]
 * @returns {Promise<RTCPeerConnection>}
 */
async function openPeer({ iceServers, setup, sendOffer, sendIce, onTrack, onState }) {
  // ICE_TRANSPORT_POLICY, on the page's root: "relay" sends everything through TURN.
  const relay = document.documentElement.dataset.iceTransportPolicy === 'relay';
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relay ? 'relay' : 'all' });
  const waiting = [];
  let answered = false;
  const send = (candidate) => sendIce(candidate).catch((error) => console.warn('rtc: ice', error));
  pc.addEventListener('icecandidate', ({ candidate }) => {
    if (!candidate || !candidate.candidate) {
      return; // end of gathering: aiortc needs no marker
    }
    const item = {
      candidate: candidate.candidate,
      sdpMid: candidate.sdpMid,
      sdpMLineIndex: candidate.sdpMLineIndex,
    };
    if (answered) {
      send(item);
    } else {
      waiting.push(item);
    }
  });
  if (onTrack) {
    pc.addEventListener('track', onTrack);
  }
  if (onState) {
    pc.addEventListener('connectionstatechange', () => onState(pc.connectionState));
  }
  try {
    setup(pc);
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await sendOffer({ type: 'offer', sdp: pc.localDescription.sdp });
    if (pc.signalingState === 'closed') {
      return pc;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  } catch (error) {
    pc.close();
    throw error;
  }
  answered = true;
  for (const item of waiting.splice(0)) {
    send(item);
  }
  return pc;
}

/**
 * What has arrived so far on a peer connection: decoded video frames and packets of each kind.
 * @param {RTCPeerConnection} pc
 */
async function inboundCounters(pc) {
  const counters = { framesDecoded: 0, videoPackets: 0, audioPackets: 0 };
  const report = await pc.getStats();
  report.forEach((stat) => {
    if (stat.type !== 'inbound-rtp') {
      return;
    }
    if (stat.kind === 'video') {
      counters.framesDecoded += stat.framesDecoded || 0;
      counters.videoPackets += stat.packetsReceived || 0;
    } else if (stat.kind === 'audio') {
      counters.audioPackets += stat.packetsReceived || 0;
    }
  });
  return counters;
}

/**
 * Calls `onStall` once when nothing new has arrived for `stallMs` (frames or packets), which is
 * much sooner than the browser's own ICE failure (~30 s). Returns a stop function.
 * @param {RTCPeerConnection} pc
 * @param {() => void} onStall
 * @param {number} stallMs
 */
function watchInbound(pc, onStall, stallMs) {
  let last = -1;
  let lastChangeMs = performance.now();
  let stopped = false;
  const timer = window.setInterval(async () => {
    if (stopped || pc.connectionState === 'closed') {
      return;
    }
    let counters;
    try {
      counters = await inboundCounters(pc);
    } catch {
      return;
    }
    const total = counters.framesDecoded + counters.videoPackets + counters.audioPackets;
    const now = performance.now();
    if (total !== last) {
      last = total;
      lastChangeMs = now;
    } else if (now - lastChangeMs > stallMs) {
      stop();
      onStall();
    }
  }, STATS_INTERVAL_MS);
  function stop() {
    stopped = true;
    window.clearInterval(timer);
  }
  return stop;
}

/**
 * What one offer needs. The page's `plan` makes a new one for every attempt, so each attempt keeps
 * what it was made with (the call, the socket, the local tracks).
 * @typedef {object} MediaPlan
 * @property {RTCIceServer[]} iceServers the server's list, always explicit
 * @property {(pc: RTCPeerConnection) => void} setup adds the transceivers
 * @property {(offer: {type: 'offer', sdp: string}) => Promise<{sdp: string}>} sendOffer
 * @property {(candidate: {candidate: string, sdpMid: string | null, sdpMLineIndex: number | null}) => Promise<unknown>} sendIce
 * @property {(event: RTCTrackEvent) => void} [onTrack] only while the attempt is the link's newest
 * @property {(pc: RTCPeerConnection) => void} [onOpen] answered, and still the newest
 * @property {(error: any, current: boolean) => void} [onFailure] every failed attempt; `current`
 *   says whether it was still the newest (only then does the link offer again)
 */

/**
 * One page's link to the call's media session. `start()` replaces whatever link there was with a
 * new peer connection and offer; the link then renews itself when the connection fails, stays
 * disconnected for `graceMs`, or (with `stallMs`) delivers nothing that long, and retries a failed
 * offer after `retryMs[error.code]` (else RETRY_MS). An attempt overtaken by a newer `start()` or
 * by `close()` is dropped wherever it is.
 */
export class MediaLink {
  /** @type {() => MediaPlan | null | Promise<MediaPlan | null>} */ #plan;
  /** @type {Record<string, number>} */ #retryMs;
  #stallMs;
  #graceMs;
  /** @type {(state: RTCPeerConnectionState) => void} */ #onState;
  /** @type {() => void} */ #onClose;
  /** @type {RTCPeerConnection | null} */ #pc = null;
  #generation = 0;
  #retryTimer = 0;
  #stopWatch = () => {};

  /**
   * @param {object} options
   * @param {() => MediaPlan | null | Promise<MediaPlan | null>} options.plan what the next offer
   *   needs, or null when there is nothing to link now (no call, a text call, the socket down)
   * @param {Record<string, number>} [options.retryMs] ms before a new offer, by error code
   * @param {number} [options.stallMs] replace a connected link that delivers nothing this long
   *   (getStats counters); 0 does not watch them
   * @param {number} [options.graceMs] how long "disconnected" may last
   * @param {(state: RTCPeerConnectionState) => void} [options.onState] the newest connection's state
   * @param {() => void} [options.onClose] the old connection has just been let go
   */
  constructor({ plan, retryMs = {}, stallMs = 0, graceMs = DISCONNECTED_GRACE_MS, onState, onClose }) {
    this.#plan = plan;
    this.#retryMs = retryMs;
    this.#stallMs = stallMs;
    this.#graceMs = graceMs;
    this.#onState = onState || (() => {});
    this.#onClose = onClose || (() => {});
  }

  /** Lets go of the peer connection and any retry; attempts under way are dropped. */
  close() {
    this.#generation += 1;
    window.clearTimeout(this.#retryTimer);
    this.#stopWatch();
    this.#stopWatch = () => {};
    if (this.#pc) {
      this.#pc.close();
      this.#pc = null;
    }
    this.#onClose();
  }

  /** A new peer connection and offer in place of the old one: after every (re)connect, and at once when the server says the media is lost. */
  async start() {
    this.close();
    const generation = this.#generation;
    const current = () => generation === this.#generation;
    const plan = await this.#plan();
    if (!plan || !current()) {
      return;
    }
    try {
      const pc = await openPeer({
        iceServers: plan.iceServers,
        setup: plan.setup,
        sendOffer: plan.sendOffer,
        sendIce: plan.sendIce,
        onTrack: (event) => {
          if (current()) {
            plan.onTrack?.(event);
          }
        },
        onState: (state) => this.#changed(generation, state),
      });
      if (!current()) {
        pc.close();
        return;
      }
      this.#pc = pc;
      plan.onOpen?.(pc);
    } catch (error) {
      plan.onFailure?.(error, current());
      if (current()) {
        const code = error && error.code;
        const wait = typeof code === 'string' && Object.hasOwn(this.#retryMs, code) ? this.#retryMs[code] : RETRY_MS;
        this.#retryTimer = window.setTimeout(() => this.start(), wait);
      }
    }
  }

  /**
   * @param {number} generation
   * @param {RTCPeerConnectionState} state
   */
  #changed(generation, state) {
    if (generation !== this.#generation) {
      return;
    }
    this.#onState(state);
    if (state === 'connected' && this.#pc) {
      if (this.#stallMs > 0) {
        this.#stopWatch();
        this.#stopWatch = watchInbound(this.#pc, () => this.start(), this.#stallMs);
      }
    } else if (state === 'failed') {
      this.start();
    } else if (state === 'disconnected') {
      window.setTimeout(() => {
        if (generation === this.#generation && this.#pc?.connectionState === 'disconnected') {
          this.start();
        }
      }, this.#graceMs);
    }
  }
}
