// WebAuthn's binary fields as the server's JSON carries them: base64url without padding.
// Options arrive with base64url strings where the browser wants ArrayBuffers, and the
// browser's answer goes back with its ArrayBuffers as base64url strings.

/** @param {string} text */
export function fromB64url(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
}

/** @param {ArrayBuffer | null} buffer */
export function toB64url(buffer) {
  if (!buffer) {
    return null;
  }
  let text = '';
  for (const byte of new Uint8Array(buffer)) {
    text += String.fromCharCode(byte);
  }
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** @param {{id: string, type: string, transports?: string[]}[]} [list] */
function descriptors(list) {
  return (list || []).map((item) => ({ ...item, id: fromB64url(item.id) }));
}

/** The server's registration options as navigator.credentials.create wants them. */
export function creationOptions(/** @type {any} */ options) {
  return {
    ...options,
    challenge: fromB64url(options.challenge),
    user: { ...options.user, id: fromB64url(options.user.id) },
    excludeCredentials: descriptors(options.excludeCredentials),
  };
}

/** The server's sign-in options as navigator.credentials.get wants them. */
export function requestOptions(/** @type {any} */ options) {
  return {
    ...options,
    challenge: fromB64url(options.challenge),
    allowCredentials: descriptors(options.allowCredentials),
  };
}

/** A PublicKeyCredential as JSON for the server (registration or assertion). */
export function credentialJson(/** @type {any} */ credential) {
  const response = credential.response;
  const body = {
    clientDataJSON: toB64url(response.clientDataJSON),
  };
  if (response.attestationObject) {
    Object.assign(body, {
      attestationObject: toB64url(response.attestationObject),
      transports: typeof response.getTransports === 'function' ? response.getTransports() : [],
    });
  } else {
    Object.assign(body, {
      authenticatorData: toB64url(response.authenticatorData),
      signature: toB64url(response.signature),
      userHandle: toB64url(response.userHandle),
    });
  }
  return {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    response: body,
    clientExtensionResults: credential.getClientExtensionResults(),
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
  };
}

/**
 * POST JSON with the page's CSRF token; the answer's body, or an Error whose message is the
 * refusal's code.
 * @param {string} url
 * @param {string} csrf
 * @param {object} body
 */
export async function postJson(url, csrf, body) {
  let response;
  try {
    response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body),
    });
  } catch {
    throw new Error('network');
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(answer?.error?.code || 'other');
  }
  return answer;
}
