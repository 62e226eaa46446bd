// A key that presses an element acting as a button (role="button": a DAG node, a map's child):
// Enter or Space, as on a <button>. Space would also scroll the page under it: kept from it.
export function pressesButton(ev) {
  if (ev.key === "Enter") return true;
  if (ev.key !== " ") return false;
  ev.preventDefault();
  return true;
}

// Escape meant for this view: not one something inside already took (a Lab dialog's own).
export function closesOnEscape(ev) {
  return ev.key === "Escape" && !ev.defaultPrevented;
}
