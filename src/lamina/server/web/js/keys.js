// Which key presses send. An Enter that confirms an IME composition (Chinese
// pinyin, Japanese kana) belongs to the IME and never sends: browsers mark it
// with isComposing, older ones only with keyCode 229.

function composing(e) {
  return e.isComposing || e.keyCode === 229;
}

/** Enter alone (Shift+Enter is a new line): the chat box and one-line fields. */
export function isEnterSend(e) {
  return e.key === "Enter" && !e.shiftKey && !composing(e);
}

/** Ctrl+Enter or Cmd+Enter: run from a multi-line field where Enter is a new line. */
export function isCtrlEnter(e) {
  return e.key === "Enter" && (e.ctrlKey || e.metaKey) && !composing(e);
}
