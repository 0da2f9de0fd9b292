// /account/keys: adding a hardware key or passkey. Asks the server for options, lets the
// browser make the credential (navigator.credentials.create), sends it back under the name the
// user gave, and reloads the list. Sets data-ready on the section once it listens.
import { loadCatalog, t } from './i18n.js';
import { creationOptions, credentialJson, postJson } from './webauthn_codec.js';

const section = /** @type {HTMLElement} */ (document.querySelector('[data-testid="webauthn-keys"]'));
const form = /** @type {HTMLFormElement | null} */ (section.querySelector('[data-testid="webauthn-add-form"]'));
const errorBox = /** @type {HTMLElement | null} */ (section.querySelector('[data-testid="webauthn-error"]'));

/** @param {string} code */
function showError(code) {
  if (!errorBox) {
    return;
  }
  const known = ['invalid_key_name', 'webauthn_refused', 'webauthn_unavailable', 'cancelled'];
  errorBox.textContent = t(`keys.error.${known.includes(code) ? code : 'other'}`);
  errorBox.dataset.code = code;
  errorBox.hidden = false;
}

async function addKey(/** @type {SubmitEvent} */ event) {
  event.preventDefault();
  if (!form || !errorBox) {
    return;
  }
  errorBox.hidden = true;
  const csrf = /** @type {HTMLInputElement} */ (form.elements.namedItem('csrf_token')).value;
  const name = /** @type {HTMLInputElement} */ (form.elements.namedItem('name')).value.trim();
  if (!name) {
    showError('invalid_key_name');
    return;
  }
  const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type="submit"]'));
  button.disabled = true;
  try {
    const options = await postJson('/account/keys/options', csrf, {});
    let credential;
    try {
      credential = await navigator.credentials.create({ publicKey: creationOptions(options.publicKey) });
    } catch {
      throw new Error('cancelled');
    }
    await postJson('/account/keys', csrf, {
      challenge_id: options.challenge_id,
      name,
      credential: credentialJson(credential),
    });
    window.location.reload();
  } catch (error) {
    showError(/** @type {Error} */ (error).message);
    button.disabled = false;
  }
}

await loadCatalog();
if (form) {
  if (!window.PublicKeyCredential) {
    showError('webauthn_unavailable');
  }
  form.addEventListener('submit', addKey);
}
section.dataset.ready = 'true';
