// /login: signing in with a hardware key. "Use security key" sends the username and password
// with the key's answer instead of a TOTP code; "Sign in with passkey" (where the deployment
// allows it) the key's answer alone. /login/totp (data-after-sso: the second step after a
// single sign-on) sends the key's answer alone, the session naming the account. On success the
// server has set the session: go where it says; on failure show the one sign-in failure text.
import { loadCatalog, t } from './i18n.js';
import { credentialJson, postJson, requestOptions } from './webauthn_codec.js';

const keys = /** @type {HTMLElement} */ (document.querySelector('[data-testid="login-keys"]'));
const afterSso = keys.dataset.afterSso === 'true';
const form = /** @type {HTMLFormElement} */ (
  document.querySelector(afterSso ? 'form[action="/login/totp"]' : 'form[action="/login"]')
);
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
    const asked = afterSso ? {} : passkey ? { passkey: true } : { username: field('username') };
    const base = afterSso ? '/login/totp/key' : '/login/key';
    const options = await postJson(`${base}/options`, csrf, asked);
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
    } catch {
      throw new Error('cancelled');
    }
    const answered = { challenge_id: options.challenge_id, credential: credentialJson(credential) };
    const answer = await postJson(base, csrf, afterSso ? answered : {
      ...answered,
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
    const failed = afterSso ? 'login.key.error.after_sso' : 'login.key.error.failed';
    errorBox.textContent = (texts[code] || (() => t(failed)))();
    errorBox.dataset.code = code;
    errorBox.hidden = false;
    buttons.forEach((b) => { b.disabled = false; });
  }
}

await loadCatalog();
if (window.PublicKeyCredential) {
  keys.hidden = false;
  keys.querySelector('[data-testid="login-webauthn"]')?.addEventListener('click', () => {
    if (!afterSso && !form.reportValidity()) {
      return;
    }
    signIn(false);
  });
  keys.querySelector('[data-testid="login-passkey"]')?.addEventListener('click', () => signIn(true));
}
keys.dataset.ready = 'true';
