// Small helpers of the Experiments view's controls: elements built with text (never HTML),
// select options, a default choice, durations.

/** An element with attributes, text and children; text is set as text, never parsed. */
export function h(tag, attrs = {}, text, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  el.append(...children);
  return el;
}

export function option(value, label) {
  return h("option", { value }, label);
}

/** `current` if one of `columns` has that id, else the first column's id (or null). */
export function pick(current, columns) {
  if (current && columns.some((c) => c.id === current)) return current;
  return columns.length ? columns[0].id : null;
}

/** A task run's duration as the table shows it: "0.52 s", "2 min 5 s". */
export function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 60) return `${value.toFixed(value < 10 ? 2 : 1)} s`;
  const m = Math.floor(value / 60);
  return m < 120 ? `${m} min ${Math.round(value % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
