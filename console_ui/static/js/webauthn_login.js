// /login: signing in with a hardware key. "Use security key" sends the username and password
// with the key's answer instead of a TOTP code; "Sign in with passkey" (where the deployment
// allows it) the key's answer alone. On success the server has set the session: go where it
// says; on failure show the one sign-in failure text every refusal gets.
import { loadCatalog, t } from './i18n.js';
import { credentialJson, postJson, requestOptions } from './webauthn_codec.js';

const form = /** @type {HTMLFormElement} */ (document.querySelector('form[action="/login"]'));
const keys = /** @type {HTMLElement} */ (document.querySelector('[data-testid="login-keys"]'));
const errorBox = /** @type {HTMLElement} */ (keys.querySelector('[data-testid="login-webauthn-error"]'));

/** @param {string} name */
function field(name) {
  return /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value;
}

/** @param {boolean} passkey */
async function signIn(passkey) {
  errorBox.hidden = true;
  const csrf = field('csrf_token');
  const buttons = keys.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const asked = passkey ? { passkey: true } : { username: field('username') };
    const options = await postJson('/login/key/options', csrf, asked);
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
    } catch {
      throw new Error('cancelled');
    }
    const answer = await postJson('/login/key', csrf, {
      challenge_id: options.challenge_id,
      credential: credentialJson(credential),
      passkey,
      username: passkey ? '' : field('username'),
      password: passkey ? '' : field('password'),
      next: field('next'),
    });
    window.location.assign(answer.location);
  } catch (error) {
    const code = /** @type {Error} */ (error).message;
    const texts = {
      rate_limited: () => t('login.key.error.throttled'),
      cancelled: () => t('keys.error.cancelled'),
    };
    errorBox.textContent = (texts[code] || (() => t('login.key.error.failed')))();
    errorBox.dataset.code = code;
    errorBox.hidden = false;
    buttons.forEach((b) => { b.disabled = false; });
  }
}

await loadCatalog();
if (window.PublicKeyCredential) {
  keys.hidden = false;
  keys.querySelector('[data-testid="login-webauthn"]')?.addEventListener('click', () => {
    if (!form.reportValidity()) {
      return;
    }
    signIn(false);
  });
  keys.querySelector('[data-testid="login-passkey"]')?.addEventListener('click', () => signIn(true));
}
keys.dataset.ready = 'true';
