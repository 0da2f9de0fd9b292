// Who is on the call with the caller (docs/wall.md, "Silent monitor"): the operator, and a
// supervisor while one watches or speaks. The server tells the page before a supervisor's media
// flows and at every change, so the caller is never watched without knowing.
import { t } from './i18n.js';

/**
 * Shows the people present, and says in the chat when a supervisor joins, speaks or leaves.
 * @param {HTMLElement} box the `people-present` element (data-roles: space-separated roles)
 * @param {{roles: string[], speaking: string[]}} people the server's `call.people` event
 * @param {(text: string) => void} say a line in the call's chat, from the system
 */
export function showPeople(box, people, say) {
  const before = (box.dataset.roles || '').split(' ').filter(Boolean);
  const wasSpeaking = box.dataset.speaking === 'true';
  const roles = people.roles || [];
  const speaking = (people.speaking || []).includes('supervisor');
  box.dataset.roles = roles.join(' ');
  box.dataset.speaking = String(speaking);
  // Two operators while a transfer's target or a second operator is on: said as a number.
  const operators = roles.filter((role) => role === 'operator').length;
  const names = [...new Set(roles)].map((role) => {
    if (role === 'operator' && operators > 1) {
      return t('call.people.operators', { count: operators });
    }
    return role === 'supervisor' && speaking ? t('call.people.supervisor_speaking') : t(`call.people.${role}`);
  });
  box.querySelector('[data-people="list"]').textContent = names.join(', ');
  box.hidden = roles.length === 0;
  box.classList.toggle('people-watched', roles.includes('supervisor'));
  if (roles.includes('supervisor') && !before.includes('supervisor')) {
    say(t('call.people.supervisor_joined'));
  }
  if (speaking && !wasSpeaking) {
    say(t('call.people.supervisor_speaks'));
  }
  if (!roles.includes('supervisor') && before.includes('supervisor')) {
    say(t('call.people.supervisor_left'));
  }
}
