// A report's follow page (/reports/follow/{token}): rendered by the server; this only shows the
// history's UTC timestamps in the reader's language and time zone.

const lang = document.documentElement.lang || 'en';
const format = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });

for (const element of document.querySelectorAll('time[datetime]')) {
  const when = new Date(element.getAttribute('datetime') || '');
  if (!Number.isNaN(when.getTime())) {
    element.textContent = format.format(when);
  }
}
document.body.dataset.ready = 'true';
