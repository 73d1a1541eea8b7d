// A small Markdown renderer for model answers, written for this page (no dependency).
//
// Blocks: fenced code, ATX headings, (nested) bullet and numbered lists, block
// quotes, GFM pipe tables, rules, paragraphs (a single newline is a line break).
// Inline: code spans, **bold**, *italic* / _italic_, ~~strike~~, [links](url)
// for http(s) and mailto URLs only, backslash escapes.
//
// Safety rule: every piece of text is HTML-escaped before any markup is added,
// so whatever a model writes (<script>, onerror=..., javascript: URLs) shows as
// text; the only tags and attributes in the output are the ones made here.
// An unclosed code fence runs to the end, so a half-streamed answer renders
// the way it will look when it is complete.

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESC[c]);
}

const FENCE = /^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*)|[ \t]*)$/;
const QUOTE = /^ {0,3}>[ ]?(.*)$/;
const TABLE_SEP = /^ *\|? *:?-+:? *(\| *:?-+:? *)*\|? *$/;
const SAFE_URL = /^(https?:\/\/|mailto:)/i;

/** Markdown text -> HTML string (escaped; see the safety rule above). */
export function renderMarkdown(source) {
  const text = String(source ?? "").replace(/\r\n?/g, "\n").replace(/\0/g, "\uFFFD");
  return blocks(text.split("\n"));
}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

function isTableStart(lines, i) {
  return i + 1 < lines.length && lines[i].includes("|") && lines[i + 1].includes("|")
    && TABLE_SEP.test(lines[i + 1]);
}

function startsBlock(lines, i) {
  const line = lines[i];
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)
    || ITEM.test(line) && !!ITEM.exec(line)[3] || isTableStart(lines, i);
}

function blocks(lines) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) {
      i++;
    } else if ((m = FENCE.exec(line))) {
      const [, indent, marker, lang] = m;
      const body = [];
      i++;
      while (i < lines.length) {
        const close = lines[i].trim();
        if (close[0] === marker[0] && close.length >= marker.length
            && close === marker[0].repeat(close.length)) {
          i++;
          break;
        }
        body.push(lines[i].startsWith(indent) ? lines[i].slice(indent.length) : lines[i]);
        i++;
      }
      out.push(codeBlock(body.join("\n"), lang));
    } else if ((m = HEADING.exec(line))) {
      const level = m[1].length;
      out.push(`<h${level}>${inline(m[2] || "")}</h${level}>`);
      i++;
    } else if (RULE.test(line)) {
      out.push("<hr>");
      i++;
    } else if (isTableStart(lines, i)) {
      i = table(lines, i, out);
    } else if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim()) {
        const q = QUOTE.exec(lines[i]);
        body.push(q ? q[1] : lines[i]);
        i++;
      }
      out.push(`<blockquote>${blocks(body)}</blockquote>`);
    } else if (ITEM.test(line)) {
      i = list(lines, i, out);
    } else {
      const para = [line.trim()];
      i++;
      while (i < lines.length && lines[i].trim() && !startsBlock(lines, i)) {
        para.push(lines[i].trim());
        i++;
      }
      out.push(`<p>${para.map(inline).join("<br>")}</p>`);
    }
  }
  return out.join("");
}

function codeBlock(code, lang) {
  const name = lang.replace(/[^\w+#.-]/g, "").slice(0, 32);
  const cls = name ? ` class="language-${escapeHtml(name)}"` : "";
  return `<div class="code"><div class="code-head"><span>${escapeHtml(name || "code")}</span>`
    + `<button type="button" class="copy">copy</button></div>`
    + `<pre><code${cls}>${escapeHtml(code)}</code></pre></div>`;
}

function cells(row) {
  let r = row.trim();
  if (r.startsWith("|")) r = r.slice(1);
  if (r.endsWith("|") && !r.endsWith("\\|")) r = r.slice(0, -1);
  return r.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

function table(lines, i, out) {
  const head = cells(lines[i]);
  const aligns = cells(lines[i + 1]).map((c) => {
    const left = c.startsWith(":");
    const right = c.endsWith(":");
    return left && right ? "center" : right ? "right" : left ? "left" : "";
  });
  const cell = (tag, text, k) => {
    const a = aligns[k] ? ` class="al-${aligns[k]}"` : "";
    return `<${tag}${a}>${inline(text ?? "")}</${tag}>`;
  };
  let html = "<div class=\"table-wrap\"><table><thead><tr>"
    + head.map((c, k) => cell("th", c, k)).join("") + "</tr></thead><tbody>";
  i += 2;
  while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
    const row = cells(lines[i]);
    html += "<tr>" + head.map((_, k) => cell("td", row[k], k)).join("") + "</tr>";
    i++;
  }
  out.push(html + "</tbody></table></div>");
  return i;
}

function list(lines, i, out) {
  const first = ITEM.exec(lines[i]);
  const base = first[1].length;
  const ordered = /\d/.test(first[2]);
  const items = [];
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length !== base || /\d/.test(m[2]) !== ordered) break;
    const contentIndent = base + m[2].length + 1;
    const body = [m[3] || ""];
    let loose = false;
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (!line.trim()) {
        let j = i;
        while (j < lines.length && !lines[j].trim()) j++;
        if (j < lines.length && indentOf(lines[j]) >= contentIndent) {
          loose = true;
          for (; i < j; i++) body.push("");
          continue;
        }
        break;
      }
      const ind = indentOf(line);
      if (ind >= contentIndent || (ind > base && ITEM.test(line))) {
        body.push(line.slice(Math.min(ind, contentIndent)));
      } else if (ind <= base && startsBlock(lines, i)) {
        break;
      } else {
        body.push(line.trim()); // lazy continuation of the item's paragraph
      }
      i++;
    }
    let html = blocks(body);
    if (!loose) html = html.replace(/^<p>([\s\S]*?)<\/p>/, "$1");
    items.push(`<li>${html}</li>`);
    // a blank line between items of the same list keeps the list going
    let j = i;
    while (j < lines.length && !lines[j].trim()) j++;
    const next = j < lines.length ? ITEM.exec(lines[j]) : null;
    if (j > i && next && next[1].length === base && /\d/.test(next[2]) === ordered) i = j;
  }
  const start = ordered ? parseInt(first[2], 10) : 1;
  const tag = ordered ? "ol" : "ul";
  const attr = ordered && start !== 1 ? ` start="${start}"` : "";
  out.push(`<${tag}${attr}>${items.join("")}</${tag}>`);
  return i;
}

/** Inline Markdown of one line of text -> HTML (escaped). */
function inline(text) {
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let s = String(text)
    .replace(/(`+)(?!`)([\s\S]*?[^`])\1(?!`)/g, (_, _ticks, code) => hold(`<code>${escapeHtml(code)}</code>`))
    .replace(/\\([\\`*_{}[\]()#+\-.!|~>])/g, (_, ch) => hold(escapeHtml(ch)));
  s = escapeHtml(s);
  s = s.replace(/\[([^\]\n]+)\]\(\s*([^()\s]+)(?:\s+&quot;[^\n]*?&quot;)?\s*\)/g, (all, label, url) =>
    SAFE_URL.test(url)
      ? hold(`<a href="${url}" target="_blank" rel="noopener noreferrer">`) + label + hold("</a>")
      : label);
  s = s
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/(^|[^*\w])\*(?![\s*])([^*\n]*?[^\s*])\*(?![*\w])/g, "$1<em>$2</em>")
    .replace(/(^|[^\w])_(?![\s_])([^_\n]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
  return s.replace(/\u0000(\d+)\u0000/g, (_, k) => held[Number(k)]);
}
