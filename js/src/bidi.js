// Bidirectional marks, embeddings, overrides and isolates in recorded text (a flow's name, a
// log line, a parameter) reorder what follows them on screen ("Trojan Source": a state read
// backwards, "total: \u202e0001" read as 1000). Views show them escaped, as the CLI does
// (src/labloom/cli/terminal.py); the REST API and the store keep every character.
const BIDI = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `text` with each bidirectional control written out as `\uXXXX`. */
export function escapeBidi(text) {
  return String(text ?? "").replace(BIDI, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}
