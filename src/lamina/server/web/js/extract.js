// Extraction: task, schema (chips or JSON), language, one text or a JSONL file,
// one /v1/extract call per document; results as JSON and as the input text with
// the extracted values highlighted by type; the records downloadable as JSONL.

import { postJSON } from "./api.js";
import { download } from "./chat.js";
import { isCtrlEnter, isEnterSend } from "./keys.js";
import { layout, mentions } from "./spans.js";

const $ = (id) => document.getElementById(id);
/** Input fields copied into the output record, as `lamina extract` does. */
const PASS_THROUGH = ["label", "source"];
const N_COLORS = 10;

export class ExtractView {
  constructor(app) {
    this.app = app;
    this.tasks = new Map(app.tasks.map((t) => [t.name, t]));
    this.schemas = new Map(app.tasks.map((t) => [t.name, structuredClone(t.example)]));
    this.file = null;
    this.docs = null;
    this.records = [];
    this.busy = null;
    const select = $("ie-task");
    for (const t of app.tasks) {
      const opt = document.createElement("option");
      opt.value = t.name;
      opt.textContent = `${t.name} · ${t.title}`;
      select.append(opt);
    }
    select.addEventListener("change", () => this.showSchema());
    $("schema-add").addEventListener("keydown", (e) => {
      if (!isEnterSend(e)) return;
      e.preventDefault();
      this.addChip(e.target.value);
    });
    for (const radio of document.querySelectorAll("input[name=schema-mode]")) {
      radio.addEventListener("change", () => this.switchSchemaMode(radio.value));
    }
    for (const radio of document.querySelectorAll("input[name=input-mode]")) {
      radio.addEventListener("change", () => {
        $("ie-text").hidden = radio.value !== "text";
        $("ie-file-box").hidden = radio.value !== "file";
      });
    }
    $("ie-file").addEventListener("change", (e) => this.readFile(e.target.files[0]));
    $("ie-run").addEventListener("click", () => this.run());
    $("ie-stop").addEventListener("click", () => this.busy && this.busy.abort());
    $("ie-download").addEventListener("click", () => this.download());
    $("ie-text").addEventListener("keydown", (e) => {
      if (isCtrlEnter(e)) {
        e.preventDefault();
        this.run();
      }
    });
    this.showSchema();
  }

  get spec() {
    return this.tasks.get($("ie-task").value);
  }

  get mode() {
    return document.querySelector("input[name=schema-mode]:checked").value;
  }

  // ---- schema editor

  showSchema() {
    const spec = this.spec;
    const schema = this.schemas.get(spec.name);
    const asChips = Array.isArray(schema);
    if (!asChips && this.mode === "chips") this.setMode("json");
    $("schema-json").value = JSON.stringify(schema, null, 0);
    this.renderChips();
    const example = spec.item_kind === "label" ? spec.example[0]
      : `${spec.example[0][spec.key_field]}: ${spec.example[0][spec.list_field].join(", ")}`;
    $("schema-help").textContent = spec.item_kind === "label"
      ? `Type a name, e.g. ${example}, and press Enter.`
      : `Type "${spec.key_field}: ${spec.list_field}, …", e.g. ${example}, and press Enter.`;
    $("schema-add").placeholder = spec.item_kind === "label" ? "add a type" : `${spec.key_field}: ${spec.list_field}, …`;
  }

  setMode(mode) {
    document.querySelector(`input[name=schema-mode][value=${mode}]`).checked = true;
    $("schema-chips-box").hidden = mode !== "chips";
    $("schema-json").hidden = mode !== "json";
  }

  switchSchemaMode(mode) {
    const spec = this.spec;
    if (mode === "json") {
      $("schema-json").value = JSON.stringify(this.schemas.get(spec.name), null, 0);
      this.setMode("json");
      return;
    }
    let schema;
    try {
      schema = JSON.parse($("schema-json").value);
    } catch (err) {
      this.setMode("json");
      this.app.showError(`The schema is not valid JSON (${err.message}); fix it or keep editing it as JSON.`);
      return;
    }
    if (!Array.isArray(schema)) {
      this.setMode("json");
      this.app.showError("This schema is not a list (a described schema, {type: description}, is edited as JSON).");
      return;
    }
    this.schemas.set(spec.name, schema);
    this.setMode("chips");
    this.renderChips();
  }

  chipText(item) {
    const spec = this.spec;
    if (typeof item === "string") return item;
    const roles = Array.isArray(item[spec.list_field]) ? item[spec.list_field].join(", ") : "";
    return `${item[spec.key_field]}${roles ? `: ${roles}` : ""}`;
  }

  renderChips() {
    const box = $("schema-chips");
    box.replaceChildren();
    const schema = this.schemas.get(this.spec.name);
    (Array.isArray(schema) ? schema : []).forEach((item, k) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      const label = document.createElement("span");
      label.textContent = this.chipText(item);
      const del = document.createElement("button");
      del.className = "icon";
      del.title = "Remove";
      del.textContent = "×";
      del.addEventListener("click", () => {
        schema.splice(k, 1);
        this.renderChips();
      });
      chip.append(label, del);
      box.append(chip);
    });
  }

  addChip(value) {
    const spec = this.spec;
    const text = value.trim();
    if (!text) return;
    let schema = this.schemas.get(spec.name);
    if (!Array.isArray(schema)) schema = [];
    let item = text;
    if (spec.item_kind === "object") {
      const cut = text.search(/[:：]/);
      const name = (cut < 0 ? text : text.slice(0, cut)).trim();
      const roles = cut < 0 ? [] : text.slice(cut + 1).split(/[,，、;；]/).map((r) => r.trim()).filter(Boolean);
      item = { [spec.key_field]: name, ...spec.defaults, [spec.list_field]: roles };
    }
    const key = typeof item === "string" ? item : item[spec.key_field];
    const exists = schema.some((x) => (typeof x === "string" ? x : x[spec.key_field]) === key);
    if (!key || exists) {
      this.app.showError(exists ? `'${key}' is already in the schema.` : "Give the type a name.");
      return;
    }
    schema.push(item);
    this.schemas.set(spec.name, schema);
    $("schema-add").value = "";
    this.renderChips();
  }

  schema() {
    if (this.mode === "json") {
      try {
        return JSON.parse($("schema-json").value);
      } catch (err) {
        throw new Error(`The schema is not valid JSON (${err.message}).`);
      }
    }
    const schema = this.schemas.get(this.spec.name);
    if (!Array.isArray(schema) || !schema.length) throw new Error("The schema is empty: add at least one type.");
    return schema;
  }

  // ---- input

  async readFile(file) {
    this.file = null;
    this.docs = null;
    $("ie-file-info").textContent = "";
    if (!file) return;
    this.file = { name: file.name, text: await file.text() };
    try {
      await this.readDocuments();
    } catch (err) {
      this.app.showError(err.message);
    }
  }

  /** The file's documents, read by the server with lamina extract's reader. */
  async readDocuments() {
    const { name, text } = this.file;
    const answer = await postJSON("/v1/extract/documents", { name, text, task: this.spec.name });
    this.docs = answer.documents;
    const lines = [`${name}: ${answer.documents.length} document(s)`];
    if (answer.bad.length) {
      lines.push(`${answer.bad.length} record(s) skipped: ${answer.bad.map((b) => b.error).join("; ")}`);
    }
    $("ie-file-info").textContent = lines.join(". ");
    return this.docs;
  }

  async documents() {
    const fromFile = document.querySelector("input[name=input-mode]:checked").value === "file";
    this.runName = fromFile && this.file ? this.file.name.replace(/\.[^.]*$/, "") : "text";
    if (fromFile) {
      if (!this.file) throw new Error("Choose a JSONL file first.");
      const docs = await this.readDocuments(); // again: the task may have changed
      if (!docs.length) throw new Error(`${this.file.name} holds no document to extract from.`);
      return docs;
    }
    const text = $("ie-text").value;
    if (!text.trim()) throw new Error("The text to extract from is empty.");
    return [{ id: "1", text }];
  }

  // ---- running

  async run() {
    if (this.busy) return;
    const controller = new AbortController();
    this.busy = controller;
    let docs;
    let schema;
    try {
      schema = this.schema();
      docs = await this.documents();
    } catch (err) {
      this.busy = null;
      this.app.showError(err.message);
      return;
    }
    const task = this.spec.name;
    const body = { task, schema, lang: $("ie-lang").value };
    const maxTokens = parseInt($("ie-max-tokens").value, 10);
    if (Number.isInteger(maxTokens)) body.max_tokens = maxTokens;
    this.records = [];
    this.colors = new Map();
    this.task = task;
    $("ie-results").replaceChildren();
    $("ie-download").disabled = true;
    $("ie-run").hidden = true;
    $("ie-stop").hidden = false;
    this.app.clearNotice();
    let stopped = false;
    try {
      for (const [k, doc] of docs.entries()) {
        $("ie-progress").textContent = `${k}/${docs.length} done…`;
        const record = { id: doc.id, input: doc.text };
        for (const f of PASS_THROUGH) if (f in doc) record[f] = doc[f];
        try {
          const answer = await postJSON("/v1/extract", { ...body, input: doc.text }, controller.signal);
          record.result = answer.result;
        } catch (err) {
          if (err.name === "AbortError") {
            stopped = true;
            break;
          }
          // a problem of the whole run (bad schema, busy server, key): stop and say so
          if (err.param === "schema" || [401, 413, 422, 429, 0].includes(err.status)) {
            this.app.showError(err.message);
            stopped = true;
            break;
          }
          record.result = {};
          record.error = err.message; // this document's own failure: the run goes on
        }
        this.records.push(record);
        $("ie-results").append(this.renderRecord(record, docs.length === 1));
      }
    } finally {
      this.busy = null;
      $("ie-run").hidden = false;
      $("ie-stop").hidden = true;
      $("ie-download").disabled = !this.records.length;
      const failed = this.records.filter((r) => r.error).length;
      $("ie-progress").textContent = `${this.records.length}/${docs.length} done`
        + (failed ? `, ${failed} failed` : "") + (stopped ? " (stopped)" : "");
    }
  }

  colorOf(label) {
    if (!this.colors.has(label)) this.colors.set(label, this.colors.size % N_COLORS);
    return this.colors.get(label);
  }

  renderRecord(record, open) {
    const card = document.createElement("article");
    card.className = "record";
    card.dataset.id = record.id;
    const head = document.createElement("header");
    head.textContent = `#${record.id}`;
    card.append(head);
    if (record.error) {
      const err = document.createElement("div");
      err.className = "record-error";
      err.textContent = record.error;
      card.append(err);
    }
    const found = mentions(this.task, record.result || {});
    const { segments, missing } = layout(record.input, found);
    const text = document.createElement("div");
    text.className = "spans";
    for (const seg of segments) {
      if (!seg.labels) {
        text.append(seg.text);
        continue;
      }
      const mark = document.createElement("mark");
      mark.className = `span t${this.colorOf(seg.labels[0])}`;
      mark.dataset.labels = JSON.stringify(seg.labels);
      mark.title = seg.labels.join(", ");
      const value = document.createElement("span");
      value.className = "span-text";
      value.textContent = seg.text;
      const tag = document.createElement("span");
      tag.className = "span-label";
      tag.textContent = seg.labels.join(" · ");
      mark.append(value, tag);
      text.append(mark);
    }
    card.append(text);
    if (missing.length) {
      const note = document.createElement("div");
      note.className = "missing hint";
      note.textContent = "Not in the text: ";
      for (const m of missing) {
        const item = document.createElement("span");
        item.className = "missing-item";
        item.dataset.labels = JSON.stringify(m.labels);
        item.textContent = `${m.labels.join(", ")}: ${m.text}`;
        note.append(item);
      }
      card.append(note);
    }
    const details = document.createElement("details");
    details.open = open;
    const summary = document.createElement("summary");
    summary.textContent = "JSON";
    const pre = document.createElement("pre");
    pre.className = "json";
    pre.textContent = JSON.stringify(record.result ?? {}, null, 2);
    details.append(summary, pre);
    card.append(details);
    return card;
  }

  download() {
    if (!this.records.length) return;
    const lines = this.records.map((r) => JSON.stringify(r)).join("\n") + "\n";
    download(`${this.runName || "text"}.${this.task}.jsonl`, lines, "application/x-ndjson");
  }
}
