// Calls to lamina serve: the API key, JSON requests, server-sent event streams,
// and the server's OpenAI-style errors turned into one readable message.

const KEY = "lamina.apiKey";

/** An error the user should read: the server's message, or why it was not reached. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, param = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

let askKey = null;

/** ``fn(reason)`` asks the user for the key ("needed" or "wrong"); resolves to it, or null. */
export function onKeyNeeded(fn) {
  askKey = fn;
}

function headers(withBody) {
  const h = {};
  if (withBody) h["Content-Type"] = "application/json";
  const key = sessionStorage.getItem(KEY);
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

/** The server's error body as an ApiError (its message already says what to do). */
export async function errorOf(resp) {
  let message = `${resp.status} ${resp.statusText}`.trim();
  let code = null;
  let param = null;
  try {
    const body = await resp.json();
    if (body && body.error) {
      message = body.error.message || message;
      code = body.error.code || null;
      param = body.error.param || null;
    }
  } catch {
    // not JSON (a proxy's page): keep the status line
  }
  if (resp.status >= 400) message = `${message} (HTTP ${resp.status})`;
  return new ApiError(message, { status: resp.status, code, param });
}

async function send(method, path, body, signal) {
  for (;;) {
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers: headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError("Cannot reach the lamina server: is `lamina serve` still running?");
    }
    if (resp.status === 401 && askKey) {
      const reason = sessionStorage.getItem(KEY) ? "wrong" : "needed";
      const key = await askKey(reason);
      if (key) {
        sessionStorage.setItem(KEY, key);
        continue;
      }
    }
    if (!resp.ok) throw await errorOf(resp);
    return resp;
  }
}

export async function getJSON(path) {
  return (await send("GET", path)).json();
}

export async function postJSON(path, body, signal) {
  return (await send("POST", path, body, signal)).json();
}

/** The chunks of a streamed completion, in order; an in-band error event throws. */
export async function* stream(path, body, signal) {
  const resp = await send("POST", path, { ...body, stream: true }, signal);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trimStart()).join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        const obj = JSON.parse(data);
        if (obj.error) {
          throw new ApiError(obj.error.message || "The server stopped the answer.",
            { status: 500, code: obj.error.code || null });
        }
        yield obj;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  throw new ApiError("The answer ended early: the connection to the server was lost.");
}
