// "What is happening?": one optional tap. On the start screen it only marks a choice, which the
// call button then sends with the new call (the call never waits for it); on the call it is sent
// at once, as an update, and can be changed. A call that names none is treated the same.

const SITUATIONS = new Set([
  'threat_to_life',
  'drunk_driver',
  'violence',
  'animal_cruelty',
  'suspicious_person',
  'other',
]);

export class SituationPicker {
  /**
   * @param {HTMLElement} box a `situation` section
   * @param {(situation: string) => void} onPick
   */
  constructor(box, onPick) {
    this.box = box;
    this.chosen = '';
    for (const button of box.querySelectorAll('[data-situation]')) {
      if (!(button instanceof HTMLElement)) {
        continue;
      }
      button.addEventListener('click', () => {
        const situation = button.dataset.situation || '';
        if (SITUATIONS.has(situation)) {
          this.show(situation);
          onPick(situation);
        }
      });
    }
  }

  /** @param {string} situation the one chosen (marked pressed), '' for none */
  show(situation) {
    this.chosen = SITUATIONS.has(situation) ? situation : '';
    this.box.dataset.situation = this.chosen;
    for (const button of this.box.querySelectorAll('[data-situation]')) {
      if (button instanceof HTMLElement) {
        button.setAttribute('aria-pressed', String(button.dataset.situation === this.chosen));
      }
    }
  }

  /** @param {string} text what became of the choice (sent, not sent) */
  status(text) {
    const line = this.box.querySelector('[data-testid="situation-status"]');
    if (line) {
      line.textContent = text;
    }
  }
}
