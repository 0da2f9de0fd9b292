// The console's dialogs: ending a call (its disposition and a note) and turning a live call into
// a threat report at the caller's last known position.
import { closeCall } from './console_call.js';
import { $, appendChat, errorText, live, page } from './console_page.js';
import { t } from './i18n.js';
import { request } from './socket.js';
import { fetchJson, fillCategorySelect, loadCategories } from './threats_common.js';

// --- ending the call -----------------------------------------------------------------------

function openEndDialog() {
  if (!live.active || page.endDialog.open) {
    return;
  }
  page.endError.hidden = true;
  page.endDialog.dataset.callId = live.active.callId;
  page.endDialog.showModal();
  page.disposition.focus();
}

async function confirmEnd() {
  const active = live.active;
  if (!active) {
    page.endDialog.close();
    return;
  }
  const disposition = page.disposition.value;
  if (!disposition) {
    page.endError.textContent = t('console.disposition_required');
    page.endError.hidden = false;
    page.disposition.focus();
    return;
  }
  // How many Ends still wait for their answer, on the form (a test waits for 0).
  const pending = page.endForm.dataset;
  pending.pending = String(Number(pending.pending || 0) + 1);
  try {
    await request(live.socket, 'end_call', {
      call_id: active.callId,
      disposition,
      note: page.endNote.value.trim(),
    });
  } catch (error) {
    page.endError.textContent = errorText(error);
    page.endError.hidden = false;
    return;
  } finally {
    pending.pending = String(Number(pending.pending) - 1);
  }
  // The call's own "ended" may have closed it before this answer came, and another call (an
  // invited caller who was waiting) opened since, its End dialog perhaps already filled in:
  // clear and close only this call's.
  const ours = page.endDialog.dataset.callId === active.callId;
  if (ours) {
    page.disposition.value = '';
    page.endNote.value = '';
  }
  if (live.active === active) {
    closeCall();
  } else if (ours && page.endDialog.open) {
    page.endDialog.close();
  }
}

// --- a threat report from the call --------------------------------------------------------

async function openReportDialog() {
  if (!live.active || page.reportDialog.open) {
    return;
  }
  page.reportError.hidden = true;
  page.reportDialog.showModal();
  fillCategorySelect(page.reportCategory, await loadCategories([]));
  page.reportCategory.focus();
}

/** @param {string} text */
function reportError(text) {
  page.reportError.textContent = text;
  page.reportError.hidden = false;
}

async function confirmReport() {
  const active = live.active;
  const category = page.reportCategory.value;
  if (!active) {
    page.reportDialog.close();
    return;
  }
  if (!category) {
    reportError(t('console.report_category_required'));
    page.reportCategory.focus();
    return;
  }
  const csrf = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name="csrf_token"]'));
  let report;
  try {
    report = await fetchJson(`/api/staff/reports/from-call/${encodeURIComponent(active.callId)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf ? csrf.value : '' },
      body: JSON.stringify({ category, description: page.reportDescription.value.trim() }),
    });
  } catch (error) {
    reportError(t('console.report_failed', { reason: error.message }));
    return;
  }
  page.reportCategory.value = '';
  page.reportDescription.value = '';
  page.reportDialog.close();
  const line = appendChat('system', t('console.report_created', { id: report.id }));
  line.dataset.testid = 'call-report-created';
  line.dataset.reportId = String(report.id);
}

/** Wires the buttons that open the dialogs and the dialogs' own. */
export function bindDialogs() {
  page.endCall.addEventListener('click', () => openEndDialog());
  page.endForm.addEventListener('submit', (event) => {
    event.preventDefault();
    confirmEnd();
  });
  $('end-cancel').addEventListener('click', () => page.endDialog.close());
  page.toReport.addEventListener('click', () => openReportDialog());
  page.reportForm.addEventListener('submit', (event) => {
    event.preventDefault();
    confirmReport();
  });
  $('report-cancel').addEventListener('click', () => page.reportDialog.close());
}
