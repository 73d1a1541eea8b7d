// Conversations kept in this browser (localStorage), and their files: the same
// JSON shape as `lamina chat`'s /save (lamina.runtime.session.ChatSession.to_dict),
// so a chat moves between the terminal and the page both ways.

export const SESSION_FORMAT = "lamina.chat/1";
const CONVS = "lamina.conversations";
const CURRENT = "lamina.current";
const SETTINGS = "lamina.settings";

// The sampling fields are SamplingParams' own, as the server's model card lists them
// (card.sampling, SamplingParams.as_dict()): nothing here repeats their names.

function read(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch (err) {
    throw new Error(`The browser refused to store the chats (${err.name}): delete some old chats, or export them.`);
  }
}

export function newId() {
  return `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`;
}

/** A fresh conversation starting from the model's sampling defaults. */
export function newConversation(defaults) {
  return { id: newId(), title: "", system: null, params: { ...defaults }, messages: [],
    updated: Date.now() };
}

export function titleOf(conv) {
  const first = conv.messages.find((m) => m.role === "user");
  const text = conv.title || (first ? first.content : "New chat");
  return text.replace(/\s+/g, " ").trim().slice(0, 60) || "New chat";
}

export class Store {
  constructor(defaults) {
    this.defaults = defaults;
    this.conversations = read(CONVS, []).filter((c) => c && Array.isArray(c.messages));
    this.currentId = read(CURRENT, null);
    if (!this.current) this.add(newConversation(defaults));
  }

  get current() {
    return this.conversations.find((c) => c.id === this.currentId) || null;
  }

  add(conv) {
    this.conversations.unshift(conv);
    this.currentId = conv.id;
    this.save();
    return conv;
  }

  select(id) {
    this.currentId = id;
    this.save();
  }

  remove(id) {
    this.conversations = this.conversations.filter((c) => c.id !== id);
    if (this.currentId === id) {
      this.currentId = this.conversations[0]?.id ?? null;
      if (!this.current) this.add(newConversation(this.defaults));
    }
    this.save();
  }

  touch(conv) {
    conv.updated = Date.now();
    this.save();
  }

  save() {
    write(CURRENT, this.currentId);
    write(CONVS, this.conversations);
  }

  /** Settings outside any chat (the instruction view), kept like the chats. */
  static settings(defaults) {
    const saved = read(SETTINGS, null);
    return saved && typeof saved === "object"
      ? { system: saved.system ?? null, params: { ...defaults, ...saved.params } }
      : { system: null, params: { ...defaults } };
  }

  static saveSettings(settings) {
    write(SETTINGS, settings);
  }
}

/** A conversation as `lamina chat` /save writes it. */
export function toSaved(conv, card) {
  const params = {};
  for (const k of Object.keys(card.sampling)) params[k] = conv.params[k] ?? card.sampling[k];
  params.stop = Array.isArray(params.stop) ? params.stop : [];
  return { format: SESSION_FORMAT, model: card.id, template: card.template ?? null,
    system: conv.system || null, params,
    messages: conv.messages.map((m) => ({ role: m.role, content: m.content })) };
}

/** A saved chat (file text) -> a new conversation; the same checks as ChatSession.load. */
export function fromSaved(text, name, defaults) {
  let data;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`'${name}' is not a saved lamina chat (invalid JSON: ${err.message}).`);
  }
  if (!data || typeof data !== "object" || data.format !== SESSION_FORMAT) {
    throw new Error(`'${name}' is not a saved lamina chat (format '${SESSION_FORMAT}'). Save one with Export here or /save in lamina chat.`);
  }
  const messages = data.messages;
  if (!Array.isArray(messages) || !messages.every((m) => m && typeof m === "object"
      && (m.role === "user" || m.role === "assistant") && typeof m.content === "string")) {
    throw new Error(`'${name}' has malformed messages (need role user/assistant and text).`);
  }
  if (data.system != null && typeof data.system !== "string") {
    throw new Error(`'${name}' has a malformed system prompt.`);
  }
  const params = { ...defaults };
  if (data.params && typeof data.params === "object") {
    for (const k of Object.keys(defaults)) {
      if (!(k in data.params)) continue;
      const v = data.params[k];
      const ok = k === "stop" ? Array.isArray(v) && v.every((s) => typeof s === "string")
        : k === "seed" ? v === null || Number.isInteger(v) : typeof v === "number";
      if (!ok) throw new Error(`'${name}' has an invalid sampling parameter ${k}=${JSON.stringify(v)}.`);
      params[k] = v;
    }
  }
  return { id: newId(), title: "", system: data.system || null, params,
    messages: messages.map((m) => ({ role: m.role, content: m.content })), updated: Date.now() };
}
