// Socket.IO for the call pages: websocket transport only (no sticky sessions across nodes),
// acknowledged requests that throw a coded error, and ids for messages that may be resent.
import { io } from '/static/vendor/socket.io-client/socket.io.esm.min.js';

/** How long a request waits for its acknowledgement before it counts as lost. */
export const ACK_TIMEOUT_MS = 10_000;

/** A refused request: `code` is the server's machine-readable reason (`call_gone`, `no_media`...). */
export class RequestError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'RequestError';
    this.code = code;
  }
}

/**
 * Opens a namespace. Socket.IO reconnects on its own, with backoff; `auth` may be a function so
 * every reconnect sends what the page knows by then (the token and the last sequence number).
 * @param {string} namespace
 * @param {object | ((cb: (data: object) => void) => void)} [auth]
 */
export function connect(namespace, auth) {
  return io(namespace, {
    transports: ['websocket'],
    auth,
    reconnectionDelay: 500,
    reconnectionDelayMax: 4000,
    timeout: 8000,
  });
}

/**
 * Sends `name` and resolves with the acknowledgement when it says `ok`.
 * @param {import('/static/vendor/socket.io-client/socket.io.esm.min.js').Socket} socket
 * @param {string} name
 * @param {object} payload
 * @returns {Promise<Record<string, any>>}
 * @throws {RequestError} `timeout` when no acknowledgement came, else the server's code
 */
export async function request(socket, name, payload) {
  let reply;
  try {
    reply = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(name, payload);
  } catch {
    throw new RequestError('timeout', `${name}: no answer`);
  }
  if (!reply || reply.ok !== true) {
    const error = (reply && reply.error) || {};
    throw new RequestError(error.code || 'refused', error.message || `${name} refused`);
  }
  return reply;
}

/** A random id (22 url-safe characters) for a chat message, kept when it is resent. */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

/**
 * When the server ends this page's staff session (signed out elsewhere, the account disabled,
 * idle too long) it says so and closes the socket, which then never comes back by itself: go
 * to the sign-in page. A role change keeps the session: reload, so the page (and what its
 * socket may see) is the new role's.
 * @param {import('/static/vendor/socket.io-client/socket.io.esm.min.js').Socket} socket
 */
export function followSessionEnd(socket) {
  socket.on('event', (event) => {
    if (!event || event.type !== 'session.ended') {
      return;
    }
    if (event.reason === 'role_changed') {
      window.location.reload();
      return;
    }
    signInAgain();
  });
  // A server that closes the socket itself does not see it come back by itself (Socket.IO
  // leaves that to the page), and its session.ended can arrive after the close (through the
  // bus, in scale-out): connect once more; a session that has ended is refused, and then the
  // sign-in page is where to go, never a "reconnecting" that lasts for ever.
  socket.on('disconnect', (reason) => {
    if (reason === 'io server disconnect') {
      socket.connect();
    }
  });
  socket.on('connect_error', (error) => {
    const code = error && error.data && error.data.code;
    if (code === 'unauthorized') {
      signInAgain();
    }
  });
}

/** To the sign-in page, which says the session ended, and back here after it. */
export function signInAgain() {
  const back = encodeURIComponent(window.location.pathname);
  window.location.assign(`/login?expired=1&next=${back}`);
}
