// The page: connects to the server (asking for the API key when it needs one),
// then builds the three views and the tabs, and shows every error as a message.

import { getJSON, onKeyNeeded } from "./api.js";
import { ChatView, InstructView, Settings } from "./chat.js";
import { ExtractView } from "./extract.js";

const $ = (id) => document.getElementById(id);

let asking = null;

/** Ask for the API key in the dialog; resolves to the key, or null when cancelled.
 *  Requests refused at the same time share one question. */
function askKey(reason) {
  if (!asking) asking = showKeyDialog(reason).finally(() => { asking = null; });
  return asking;
}

function showKeyDialog(reason) {
  const dialog = $("key-dialog");
  $("key-reason").textContent = reason === "wrong"
    ? "The server refused that key. Check it (the --api-key the server was started with) and try again."
    : "This server needs an API key: the one it was started with (--api-key or LAMINA_API_KEY).";
  $("key-input").value = "";
  return new Promise((resolve) => {
    const finish = (value) => {
      $("key-form").removeEventListener("submit", onSubmit);
      $("key-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      resolve(value);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const key = $("key-input").value.trim();
      if (key) finish(key);
    };
    const onCancel = (e) => {
      e.preventDefault();
      finish(null);
    };
    $("key-form").addEventListener("submit", onSubmit);
    $("key-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    $("key-input").focus();
  });
}

class App {
  constructor() {
    this.timer = null;
    $("notice-close").addEventListener("click", () => this.clearNotice());
    for (const tab of document.querySelectorAll("[role=tab]")) {
      tab.addEventListener("click", () => this.switchTo(tab.dataset.view));
    }
    $("model-name").addEventListener("click", () => {
      if (!this.card) this.connect();
    });
  }

  showError(message) {
    this.notice(message, "error");
  }

  showInfo(message) {
    this.notice(message, "info");
    this.timer = setTimeout(() => this.clearNotice(), 5000);
  }

  notice(message, kind) {
    clearTimeout(this.timer);
    $("notice-text").textContent = message;
    $("notice").className = `notice ${kind}`;
    $("notice").hidden = false;
  }

  clearNotice() {
    clearTimeout(this.timer);
    $("notice").hidden = true;
  }

  async connect() {
    $("model-name").textContent = "connecting…";
    try {
      const models = await getJSON("/v1/models");
      const tasks = await getJSON("/v1/extract/tasks");
      this.card = models.data[0];
      this.tasks = tasks.data;
    } catch (err) {
      $("model-name").textContent = "not connected: retry";
      this.showError(err.message);
      return;
    }
    this.clearNotice();
    const card = this.card;
    $("model-name").textContent = card.id;
    $("model-name").title = `template ${card.template}, context ${card.n_ctx} tokens`;
    this.settings = new Settings(card.sampling, card.max_tokens);
    this.chat = new ChatView(this);
    this.instruct = new InstructView(this);
    this.extract = new ExtractView(this);
    document.body.classList.add("ready");
    this.switchTo(location.hash.slice(1) || "chat");
  }

  switchTo(view) {
    if (!this.card || !["chat", "instruct", "extract"].includes(view)) view = "chat";
    for (const tab of document.querySelectorAll("[role=tab]")) {
      tab.setAttribute("aria-selected", String(tab.dataset.view === view));
    }
    for (const section of document.querySelectorAll("section.view")) {
      section.hidden = section.dataset.view !== view;
    }
    if (!this.card) return;
    history.replaceState(null, "", `#${view}`);
    $("settings-toggle").hidden = view === "extract";
    if (view === "extract") this.settings.toggle(false);
    else if (view === "chat") this.chat.bindSettings();
    else this.instruct.bindSettings();
  }
}

onKeyNeeded(askKey);
const app = new App();
window.lamina = app; // for the console and the browser tests
app.connect();
