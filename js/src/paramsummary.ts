// The run tab's "parameters" fact. A sweep's grid of 40 dicts filled the row with JSON cut
// mid-line at its fixed height; a long parameter list now reads as a short form ("grid: list
// of 40 items") that opens to the whole value, as text (never parsed as HTML).
import { el } from './api';
import { escapeBidi } from './bidi';

const WHOLE = 160; // characters of JSON said as they are: about a line of the tab
const VALUE = 40; // a parameter's value said as it is, in the short form

function items(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** One value in a few words: itself when short, else its kind and size. */
export function shortValue(value: any): string {
  const text = JSON.stringify(value);
  if (text === undefined || text.length <= VALUE) {
    return String(text);
  }
  if (Array.isArray(value)) {
    return `list of ${items(value.length, 'item', 'items')}`;
  }
  if (typeof value === 'string') {
    return `text of ${items(value.length, 'character', 'characters')}`;
  }
  if (value && typeof value === 'object') {
    // A value the store kept as a summary (storable.described): its type and size.
    if (typeof value.__type__ === 'string') {
      const kind = value.__type__.replace(/^builtins\./, '');
      const size = typeof value.__len__ === 'number' ? ` of ${items(value.__len__, 'item', 'items')}` : '';
      return `${kind}${size} (kept as a summary)`;
    }
    return `dict of ${items(Object.keys(value).length, 'key', 'keys')}`;
  }
  return `${text.slice(0, VALUE)}…`;
}

/** The short form of a run's parameters, or null when their JSON is short enough to show. */
export function shortParameters(params: any): string | null {
  const whole = JSON.stringify(params);
  if (whole === undefined || whole.length <= WHOLE) {
    return null;
  }
  if (!params || typeof params !== 'object' || Array.isArray(params)) {
    return shortValue(params);
  }
  return Object.entries(params)
    .map(([name, value]) => `${name}: ${shortValue(value)}`)
    .join(', ');
}

const shown = new WeakMap<HTMLElement, string>();

/** Fills `dd` with the parameters: their JSON, or a short form that opens to it. Patched in
 * place, as the tab's other facts are: one opened stays open as the run's updates arrive. */
export function showParameters(dd: HTMLElement, params: any): void {
  const whole = escapeBidi(JSON.stringify(params) ?? '');
  if (shown.get(dd) === whole) {
    return;
  }
  shown.set(dd, whole);
  const short = shortParameters(params);
  if (short === null) {
    dd.textContent = whole;
    return;
  }
  let details = dd.querySelector('details.labloom-params');
  if (!details) {
    details = el('details', { class: 'labloom-params' });
    details.append(
      el('summary', { class: 'labloom-params-short' }),
      el('div', { class: 'labloom-params-whole' })
    );
    dd.replaceChildren(details);
  }
  details.querySelector('summary')!.textContent = escapeBidi(short);
  details.querySelector('.labloom-params-whole')!.textContent = whole;
}
