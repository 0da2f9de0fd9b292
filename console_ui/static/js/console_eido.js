// The call bar's EIDO link (docs/cad.md): the call on screen as a NENA EIDO document, to hand
// to the CAD. It follows the call that opens and stays on it after it closes, so its final
// document (disposition, last segment) is one click away until the next call opens.
const link = /** @type {HTMLAnchorElement} */ (document.querySelector('[data-testid="eido-download"]'));

/**
 * @param {string} callId
 */
export function offerEido(callId) {
  link.href = `/api/staff/calls/${encodeURIComponent(callId)}/eido`;
  link.download = `call-${callId}.eido.json`;
  link.dataset.callId = callId;
  link.hidden = false;
}
