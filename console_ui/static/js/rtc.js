// WebRTC to the call's media session on the server: one offer, trickled candidates, and a
// watchdog on the inbound counters. A page that loses its link makes a NEW peer connection
// (aiortc terminates DTLS in-process, so an ICE restart cannot move a call between nodes).

/** How often the watchdog reads getStats. */
const STATS_INTERVAL_MS = 1000;

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
export async function openPeer({ iceServers, setup, sendOffer, sendIce, onTrack, onState }) {
  const pc = new RTCPeerConnection({ iceServers });
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
export async function inboundCounters(pc) {
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
export function watchInbound(pc, onStall, stallMs) {
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
