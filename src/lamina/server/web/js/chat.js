// Chat and instruction + input: streamed answers from /v1/chat/completions,
// rendered as Markdown while they arrive, with stop, regenerate, edit, and the
// settings (system prompt, sampling) of each conversation.

import { stream } from "./api.js";
import { isCtrlEnter, isEnterSend } from "./keys.js";
import { renderMarkdown } from "./markdown.js";
import { fromSaved, newConversation, Store, titleOf, toSaved } from "./store.js";

const $ = (id) => document.getElementById(id);

/** The request fields for a conversation's sampling parameters (SamplingParams' names,
 *  which the server takes as they are). */
export function samplingBody(params) {
  const body = {};
  for (const [k, v] of Object.entries(params)) {
    if (k === "seed") {
      if (Number.isInteger(v)) body.seed = v;
    } else if (k === "stop") {
      if (Array.isArray(v) && v.length) body.stop = v;
    } else if (typeof v === "number" && Number.isFinite(v)) {
      body[k] = v;
    }
  }
  return body;
}

/** The user message of instruction + input, joined as `lamina generate` joins them. */
export function instructionMessage(instruction, input) {
  return instruction + (input ? `\n${input}` : "");
}

/** One streamed answer painted into ``target``; ``text`` holds what arrived, also after a stop. */
export class Answer {
  constructor(target) {
    this.target = target;
    this.text = "";
    this.usage = null;
    this.finish = null;
    this.seconds = 0;
    this.pending = false;
  }

  paint() {
    this.pending = false;
    this.target.innerHTML = renderMarkdown(this.text);
  }

  async run(messages, params, signal) {
    const started = performance.now();
    const body = { messages, ...samplingBody(params), stream_options: { include_usage: true } };
    try {
      for await (const chunk of stream("/v1/chat/completions", body, signal)) {
        if (chunk.usage) this.usage = chunk.usage;
        const choice = chunk.choices && chunk.choices[0];
        if (!choice) continue;
        const piece = choice.delta && choice.delta.content;
        if (piece) {
          this.text += piece;
          if (!this.pending) {
            this.pending = true;
            requestAnimationFrame(() => this.paint());
          }
        }
        if (choice.finish_reason) this.finish = choice.finish_reason;
      }
    } finally {
      this.seconds = (performance.now() - started) / 1000;
      this.paint();
    }
  }

  /** "42 tokens · 18.3 tok/s · stop" for the status line. */
  summary() {
    const n = this.usage ? this.usage.completion_tokens : null;
    const parts = [];
    if (n !== null) parts.push(`${n} tokens`, `${(n / Math.max(this.seconds, 1e-3)).toFixed(1)} tok/s`);
    if (this.finish === "length") parts.push("cut at max tokens");
    return parts.join(" · ");
  }
}

function historyOf(system, messages) {
  const head = system ? [{ role: "system", content: system }] : [];
  return head.concat(messages.map((m) => ({ role: m.role, content: m.content })));
}

/** The settings drawer: edits the system prompt and sampling of one target at a time. */
export class Settings {
  constructor(defaults, maxTokens) {
    this.defaults = defaults;
    this.panel = $("settings");
    this.inputs = [...this.panel.querySelectorAll("[data-param]")];
    for (const input of this.inputs) {
      if (input.dataset.param === "max_tokens" && maxTokens) input.max = String(maxTokens);
      input.addEventListener("change", () => this.read(input));
    }
    $("system").addEventListener("input", () => {
      if (!this.target) return;
      this.target.system = $("system").value || null;
      this.changed();
    });
    $("params-reset").addEventListener("click", () => {
      if (!this.target) return;
      this.target.params = { ...this.defaults };
      this.show();
      this.changed();
    });
    $("settings-toggle").addEventListener("click", () => this.toggle());
    $("settings-close").addEventListener("click", () => this.toggle(false));
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    $("settings-toggle").setAttribute("aria-expanded", String(open));
  }

  bind(target, scope, onChange) {
    this.target = target;
    this.onChange = onChange;
    $("settings-scope").textContent = scope;
    this.show();
  }

  show() {
    $("system").value = this.target.system || "";
    for (const input of this.inputs) {
      const v = this.target.params[input.dataset.param];
      input.value = v === null || v === undefined ? "" : String(v);
    }
  }

  read(input) {
    if (!this.target) return;
    const k = input.dataset.param;
    const raw = input.value.trim();
    let v;
    if (raw === "") v = k === "seed" ? null : this.defaults[k];
    else v = input.step === "1" ? Math.round(Number(raw)) : Number(raw); // whole-number fields
    if (v !== null && !Number.isFinite(v)) v = this.defaults[k];
    this.target.params[k] = v;
    input.value = v === null ? "" : String(v);
    this.changed();
  }

  changed() {
    if (this.onChange) this.onChange();
  }
}

export class ChatView {
  constructor(app) {
    this.app = app;
    this.store = new Store(app.card.sampling);
    this.busy = null; // the AbortController of the answer being generated
    this.prompt = $("prompt");
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    this.prompt.addEventListener("keydown", (e) => {
      if (!isEnterSend(e)) return;
      e.preventDefault();
      this.submit();
    });
    $("stop").addEventListener("click", () => this.stop());
    $("new-chat").addEventListener("click", () => {
      if (this.busy) return;
      this.store.add(newConversation(app.card.sampling));
      this.show();
      this.prompt.focus();
    });
    $("export-chat").addEventListener("click", () => this.exportCurrent());
    $("import-chat").addEventListener("change", (e) => this.importFile(e.target));
    $("convs-toggle").addEventListener("click", () => $("convs").classList.toggle("open"));
    $("convs-close").addEventListener("click", () => $("convs").classList.remove("open"));
    $("messages").addEventListener("click", (e) => copyCode(e));
    this.show();
  }

  get conv() {
    return this.store.current;
  }

  bindSettings() {
    this.app.settings.bind(this.conv, "(this chat)", () => this.store.touch(this.conv));
  }

  show() {
    this.renderList();
    this.renderMessages();
    this.bindSettings();
  }

  renderList() {
    const list = $("conv-list");
    list.replaceChildren();
    for (const conv of this.store.conversations) {
      const li = document.createElement("li");
      li.classList.toggle("current", conv.id === this.store.currentId);
      const open = document.createElement("button");
      open.className = "conv-open";
      open.textContent = titleOf(conv);
      open.addEventListener("click", () => {
        if (this.busy) return;
        this.store.select(conv.id);
        $("convs").classList.remove("open");
        this.show();
      });
      const del = document.createElement("button");
      del.className = "icon conv-delete";
      del.title = "Delete this chat";
      del.textContent = "×";
      del.addEventListener("click", () => {
        if (this.busy && conv.id === this.store.currentId) return;
        this.store.remove(conv.id);
        this.show();
      });
      li.append(open, del);
      list.append(li);
    }
    $("chat-title").textContent = titleOf(this.conv);
  }

  renderMessages() {
    const box = $("messages");
    box.replaceChildren();
    const msgs = this.conv.messages;
    msgs.forEach((m, k) => box.append(this.bubble(m, k, msgs.length)));
    if (!msgs.length) {
      const empty = document.createElement("div");
      empty.className = "empty";
      empty.textContent = `Chat with ${this.app.card.id}. The system prompt and sampling are under ⚙.`;
      box.append(empty);
    }
    box.scrollTop = box.scrollHeight;
  }

  bubble(m, k, n) {
    const div = document.createElement("div");
    div.className = `msg ${m.role}`;
    const body = document.createElement("div");
    body.className = m.role === "assistant" ? "answer md" : "text";
    if (m.role === "assistant") body.innerHTML = renderMarkdown(m.content);
    else body.textContent = m.content;
    div.append(body);
    const foot = document.createElement("div");
    foot.className = "msg-foot";
    if (m.meta) {
      const meta = document.createElement("span");
      meta.className = "status";
      meta.textContent = m.meta;
      foot.append(meta);
    }
    const lastUser = m.role === "user" && (k === n - 1 || (k === n - 2 && this.conv.messages[n - 1].role === "assistant"));
    if (lastUser && !this.busy) foot.append(this.action("Edit", "edit", () => this.edit(div, m)));
    if (m.role === "assistant" && k === n - 1 && !this.busy) {
      foot.append(this.action("Regenerate", "regenerate", () => this.regenerate()));
    }
    if (foot.childNodes.length) div.append(foot);
    return div;
  }

  action(label, cls, fn) {
    const b = document.createElement("button");
    b.className = `link ${cls}`;
    b.textContent = label;
    b.addEventListener("click", fn);
    return b;
  }

  setBusy(controller) {
    this.busy = controller;
    $("send").hidden = !!controller;
    $("stop").hidden = !controller;
  }

  submit() {
    const text = this.prompt.value;
    if (this.busy || !text.trim()) return;
    this.prompt.value = "";
    this.conv.messages.push({ role: "user", content: text });
    this.store.touch(this.conv);
    this.answer(true);
  }

  stop() {
    if (this.busy) this.busy.abort();
  }

  regenerate() {
    if (this.busy) return;
    const msgs = this.conv.messages;
    while (msgs.length && msgs[msgs.length - 1].role === "assistant") msgs.pop();
    if (msgs.length) this.answer(false);
  }

  edit(div, m) {
    const area = document.createElement("textarea");
    area.className = "edit-box";
    area.value = m.content;
    const save = this.action("Send", "edit-save", () => {
      const text = area.value;
      if (!text.trim()) return;
      const msgs = this.conv.messages;
      msgs.splice(msgs.lastIndexOf(m));
      msgs.push({ role: "user", content: text });
      this.store.touch(this.conv);
      this.answer(false);
    });
    const cancel = this.action("Cancel", "edit-cancel", () => this.renderMessages());
    const foot = document.createElement("div");
    foot.className = "msg-foot";
    foot.append(save, cancel);
    div.replaceChildren(area, foot);
    area.addEventListener("keydown", (e) => {
      if (isEnterSend(e)) {
        e.preventDefault();
        save.click();
      }
    });
    area.focus();
  }

  /** Answer the conversation's last user message, streaming into a new bubble. */
  async answer(fresh) {
    const conv = this.conv;
    const controller = new AbortController();
    this.setBusy(controller);
    this.app.clearNotice();
    this.renderList();
    this.renderMessages();
    const div = document.createElement("div");
    div.className = "msg assistant streaming";
    const body = document.createElement("div");
    body.className = "answer md";
    div.append(body);
    $("messages").append(div);
    const answer = new Answer(body);
    const follow = new MutationObserver(() => {
      const box = $("messages");
      box.scrollTop = box.scrollHeight;
    });
    follow.observe(body, { childList: true, subtree: true, characterData: true });
    try {
      await answer.run(historyOf(conv.system, conv.messages), conv.params, controller.signal);
      conv.messages.push({ role: "assistant", content: answer.text.trim(), meta: answer.summary() });
    } catch (err) {
      if (err.name === "AbortError") {
        // what was shown is what the model said: keep it, as lamina chat does
        conv.messages.push({ role: "assistant", content: answer.text.trim(), meta: "stopped" });
      } else {
        if (fresh) {
          const asked = conv.messages.pop();
          if (!this.prompt.value) this.prompt.value = asked.content;
        }
        this.app.showError(err.message);
      }
    } finally {
      follow.disconnect();
      this.setBusy(null);
      this.store.touch(conv);
      this.renderList();
      this.renderMessages();
    }
  }

  exportCurrent() {
    const data = toSaved(this.conv, this.app.card);
    const name = `${titleOf(this.conv).slice(0, 30).replace(/[\\/:*?"<>|\s]+/g, "_") || "chat"}.json`;
    download(name, JSON.stringify(data, null, 2), "application/json");
  }

  async importFile(input) {
    const file = input.files && input.files[0];
    input.value = "";
    if (!file) return;
    try {
      const conv = fromSaved(await file.text(), file.name, this.app.card.sampling);
      conv.title = file.name.replace(/\.json$/i, "");
      this.store.add(conv);
      this.show();
      this.app.showInfo(`Imported ${file.name}: ${conv.messages.length} messages.`);
    } catch (err) {
      this.app.showError(err.message);
    }
  }
}

export class InstructView {
  constructor(app) {
    this.app = app;
    this.settings = Store.settings(app.card.sampling);
    this.busy = null;
    $("instruct-run").addEventListener("click", () => this.run());
    $("instruct-stop").addEventListener("click", () => this.busy && this.busy.abort());
    $("instruct-output").addEventListener("click", (e) => copyCode(e));
    for (const id of ["instruction", "instruct-input"]) {
      $(id).addEventListener("keydown", (e) => {
        if (isCtrlEnter(e)) {
          e.preventDefault();
          this.run();
        }
      });
    }
  }

  bindSettings() {
    this.app.settings.bind(this.settings, "(instruction)", () => Store.saveSettings(this.settings));
  }

  async run() {
    const instruction = $("instruction").value;
    if (this.busy) return;
    if (!instruction.trim()) {
      this.app.showError("Write an instruction first (the input is optional).");
      return;
    }
    const content = instructionMessage(instruction, $("instruct-input").value);
    const messages = historyOf(this.settings.system, [{ role: "user", content }]);
    const controller = new AbortController();
    this.busy = controller;
    $("instruct-run").hidden = true;
    $("instruct-stop").hidden = false;
    $("instruct-status").textContent = "";
    this.app.clearNotice();
    const answer = new Answer($("instruct-output"));
    try {
      await answer.run(messages, this.settings.params, controller.signal);
      $("instruct-status").textContent = answer.summary();
    } catch (err) {
      if (err.name === "AbortError") $("instruct-status").textContent = "stopped";
      else this.app.showError(err.message);
    } finally {
      this.busy = null;
      $("instruct-run").hidden = false;
      $("instruct-stop").hidden = true;
    }
  }
}

/** Save ``text`` as a file through the browser's download. */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function copyCode(e) {
  const button = e.target.closest("button.copy");
  if (!button) return;
  const code = button.closest(".code").querySelector("code").textContent;
  const done = () => {
    button.textContent = "copied";
    setTimeout(() => { button.textContent = "copy"; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(code).then(done, () => {});
  } else {
    const range = document.createRange();
    range.selectNodeContents(button.closest(".code").querySelector("code"));
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    button.textContent = "selected: Ctrl+C";
  }
}
