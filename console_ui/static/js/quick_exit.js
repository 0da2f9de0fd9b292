// Quick exit, on every public page: the button (or Escape twice within a second) forgets what
// this device keeps of its calls and messages (their tokens in sessionStorage and localStorage)
// and replaces the page with a neutral one, so Back does not bring it up again. For a caller
// who must not be seen using the page (domestic abuse, a complaint about the police).

/** Two Escapes this close together leave; one alone may just close a dialog. */
const ESCAPE_TWICE_MS = 1000;

/** @param {string} url */
export function quickExit(url) {
  for (const store of [window.sessionStorage, window.localStorage]) {
    try {
      store.clear();
    } catch (error) {
      console.warn('quick exit: storage not cleared', error);
    }
  }
  window.location.replace(url);
}

function bind() {
  const button = document.querySelector('[data-testid="quick-exit"]');
  if (!(button instanceof HTMLAnchorElement)) {
    return;
  }
  const url = button.dataset.exitUrl || '/leave';
  button.addEventListener('click', (event) => {
    event.preventDefault();
    quickExit(url);
  });
  let lastEscape = 0;
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') {
      return;
    }
    const now = Date.now();
    if (now - lastEscape < ESCAPE_TWICE_MS) {
      quickExit(url);
    }
    lastEscape = now;
  });
}

bind();
