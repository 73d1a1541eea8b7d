// Where an extraction's values are in its input text: the (label, text) pairs of
// a result, read by task (the answer shapes of docs/extract.md), and the text cut
// into plain and highlighted segments. A value the model wrote that is not in
// the text is reported as such, never highlighted somewhere else.

const NAN = "NAN";

function strings(value) {
  if (typeof value === "string") return value && value !== NAN ? [value] : [];
  if (Array.isArray(value)) return value.flatMap(strings);
  return [];
}

function entries(obj) {
  return obj && typeof obj === "object" && !Array.isArray(obj) ? Object.entries(obj) : [];
}

function arguments_(out, args, eventType) {
  for (const [role, value] of entries(args)) {
    for (const text of strings(value)) out.push({ label: role, text, role: eventType });
  }
}

/** The mentions of a result: ``[{label, text, role}]`` in result order. */
export function mentions(task, result) {
  const out = [];
  for (const [key, value] of entries(result)) {
    if (task === "NER" || task === "EET") {
      for (const text of strings(value)) out.push({ label: key, text, role: "" });
    } else if (task === "RE") {
      for (const triple of Array.isArray(value) ? value : []) {
        for (const role of ["subject", "object"]) {
          for (const text of strings(triple && triple[role])) out.push({ label: key, text, role });
        }
      }
    } else if (task === "EE" || task === "EEA") {
      for (const event of Array.isArray(value) ? value : []) {
        if (!event || typeof event !== "object") continue;
        for (const text of strings(event.trigger)) out.push({ label: key, text, role: "trigger" });
        arguments_(out, "arguments" in event ? event.arguments : event, key);
      }
    } else if (task === "KG") {
      for (const [entity, attrs] of entries(value)) {
        for (const text of strings(entity)) out.push({ label: key, text, role: "entity" });
        arguments_(out, attrs, entity);
      }
    }
  }
  return out;
}

/**
 * ``text`` cut into segments ``{text, labels}`` (labels null for plain text), and
 * the mentions not found in it. Every occurrence of a value is marked; where two
 * values overlap, the longer one wins; one value with several labels is one span.
 */
export function layout(text, found) {
  const byText = new Map();
  for (const m of found) {
    if (!m.text) continue;
    if (!byText.has(m.text)) byText.set(m.text, []);
    const labels = byText.get(m.text);
    if (!labels.includes(m.label)) labels.push(m.label);
  }
  const taken = new Uint8Array(text.length);
  const spans = [];
  const missing = [];
  for (const [value, labels] of byText) {
    if (!text.includes(value)) missing.push({ text: value, labels });
  }
  const longestFirst = [...byText.keys()].sort((a, b) => b.length - a.length);
  for (const value of longestFirst) {
    let at = text.indexOf(value);
    while (at >= 0) {
      const end = at + value.length;
      if (taken.subarray(at, end).some((x) => x)) {
        at = text.indexOf(value, at + 1);
        continue;
      }
      taken.fill(1, at, end);
      spans.push({ start: at, end, labels: byText.get(value) });
      at = text.indexOf(value, end);
    }
  }
  spans.sort((a, b) => a.start - b.start);
  const segments = [];
  let pos = 0;
  for (const s of spans) {
    if (s.start > pos) segments.push({ text: text.slice(pos, s.start), labels: null });
    segments.push({ text: text.slice(s.start, s.end), labels: s.labels });
    pos = s.end;
  }
  if (pos < text.length) segments.push({ text: text.slice(pos), labels: null });
  return { segments, missing };
}
