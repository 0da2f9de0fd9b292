// A message thread's log, the same on the citizen's page and the console: each stored message
// shown once, in sequence order, whether it came live, in the answer to a send, or in a
// re-read after a reload (the three may arrive in any order).

export class MessageLog {
  /**
   * @param {HTMLElement} list the `ol`
   * @param {string} testid each line's `data-testid`
   */
  constructor(list, testid) {
    this.list = list;
    this.testid = testid;
    /** @type {Map<number, HTMLElement>} */
    this.shown = new Map();
  }

  clear() {
    this.shown = new Map();
    this.list.replaceChildren();
  }

  /** The highest sequence number shown. */
  get lastSeq() {
    return Math.max(0, ...this.shown.keys());
  }

  /**
   * Shows `message` (a `thread.message`) unless it is shown already.
   * @param {{seq: number, sender: string, body: string}} message
   * @param {{who: string, mine: boolean}} how the sender's label, and whether it is this side's
   * @returns {HTMLElement | null} the new line (to add an attachment to), or null
   */
  add(message, { who, mine }) {
    if (this.shown.has(message.seq)) {
      return null;
    }
    const item = document.createElement('li');
    item.className = `chat-line ${mine ? 'chat-me' : 'chat-other'}`;
    item.dataset.testid = this.testid;
    item.dataset.seq = String(message.seq);
    item.dataset.sender = message.sender;
    const label = document.createElement('span');
    label.className = 'chat-who';
    label.textContent = who;
    item.append(label);
    if (message.body) {
      const text = document.createElement('span');
      text.className = 'chat-text';
      text.textContent = message.body;
      item.append(text);
    }
    this.shown.set(message.seq, item);
    const later = [...this.shown.keys()].filter((seq) => seq > message.seq).sort((a, b) => a - b);
    this.list.insertBefore(item, later.length ? this.shown.get(later[0]) : null);
    item.scrollIntoView({ block: 'nearest' });
    return item;
  }
}
