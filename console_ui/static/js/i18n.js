// The page's texts: the same catalogue as the templates, fetched as flat JSON (key -> text).
// Keys are symbolic, so a missing text shows as its key instead of silently falling back.

let messages = {};

/**
 * Loads the catalogue for `lang` (default: the page's <html lang>). Keeps the previous one,
 * and resolves with it, when the fetch fails: a call in progress must not break over a text.
 * @param {string} [lang]
 * @returns {Promise<Record<string, string>>}
 */
export async function loadCatalog(lang) {
  const code = lang || document.documentElement.lang || 'en';
  try {
    const response = await fetch(`/i18n/${encodeURIComponent(code)}.json`, {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    if (response.ok) {
      messages = await response.json();
    } else {
      console.warn('i18n: catalogue not loaded', code, response.status);
    }
  } catch (error) {
    console.warn('i18n: catalogue not loaded', code, error);
  }
  return messages;
}

/**
 * The text for `key`, with `{name}` placeholders filled from `values` (as Python's str.format).
 * @param {string} key
 * @param {Record<string, string | number>} [values]
 * @returns {string}
 */
export function t(key, values) {
  const text = Object.hasOwn(messages, key) ? messages[key] : key;
  // A text naming the emergency number names this deployment's (the page's data-emergency).
  const emergency = document.documentElement.dataset.emergency;
  if (emergency && text.includes('{emergency}')) {
    values = { emergency, ...(values || {}) };
  }
  if (!values) {
    return text;
  }
  return text.replace(/\{(\w+)\}/g, (match, name) =>
    Object.hasOwn(values, name) ? String(values[name]) : match,
  );
}

/**
 * Formats a duration as m:ss (or h:mm:ss) for timers and wait times.
 * @param {number} totalSecs
 * @returns {string}
 */
export function formatDuration(totalSecs) {
  const secs = Math.max(0, Math.floor(totalSecs));
  const hours = Math.floor(secs / 3600);
  const minutes = Math.floor((secs % 3600) / 60);
  const seconds = String(secs % 60).padStart(2, '0');
  return hours > 0
    ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}`
    : `${minutes}:${seconds}`;
}
