"""The web page end to end in headless Chromium against ``lamina serve`` on SmolLM2.

What the page shows is compared with what the server sent (the raw event stream,
the /v1/extract JSON), and chat files with lamina's own ChatSession.
"""

from __future__ import annotations

import json

import pytest

from tests.web.conftest import API_KEY, PageRun, screenshot

#: SmolLM2 answers this NER request with a value that is in the sentence (澳大利亚).
NER_TEXT = "李娜在澳大利亚网球公开赛夺冠。"
NER_SCHEMA = ["人物", "地理位置", "组织机构"]
GOLD = {"人物": ["李娜"], "地理位置": ["澳大利亚"], "组织机构": []}

OBSERVE = """() => {
  window.__snaps = [];
  new MutationObserver(() => {
    const el = document.querySelector('.msg.streaming .answer');
    if (el) window.__snaps.push(el.textContent.length);
  }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
}"""


def deltas(sse: str) -> str:
    """The answer text of an OpenAI chat stream (parsed here, not by the page)."""
    text = []
    for line in sse.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            event = json.loads(line[6:])
            for choice in event.get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text)


def sse(page, index: int, done: bool = True) -> str:
    if done:
        page.wait_for_function(f"() => window.__sse[{index}] && window.__sse[{index}].done")
    return page.evaluate(f"window.__sse[{index}].text")


def current_chat(page) -> dict:
    return page.evaluate("""() => {
        const all = JSON.parse(localStorage.getItem('lamina.conversations'));
        const id = JSON.parse(localStorage.getItem('lamina.current'));
        return all.find((c) => c.id === id);
    }""")


def set_params(page, system: str | None = None, **params) -> None:
    page.click("#settings-toggle")
    if system is not None:
        page.fill("#system", system)
    for name, value in params.items():
        page.fill(f"[data-param={name}]", str(value))
        page.press(f"[data-param={name}]", "Tab")  # 'change' fires on leaving the field
    page.click("#settings-close")


@pytest.fixture()
def bodies(web: PageRun) -> list[dict]:
    """The JSON bodies the page POSTed to /v1/chat/completions, in order."""
    seen: list[dict] = []
    web.page.on("request", lambda r: seen.append(json.loads(r.post_data))
                if r.url.endswith("/v1/chat/completions") and r.method == "POST" else None)
    return seen


def send(page, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def wait_answered(page) -> None:
    page.wait_for_selector("#send:not([hidden])", timeout=90_000)
    assert page.locator(".msg.streaming").count() == 0


def test_api_key_is_asked_once_kept_for_the_tab_and_a_wrong_one_is_refused(browser, web_server):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(web_server.url + "/")
        page.wait_for_selector("#key-dialog[open]")
        assert "needs an API key" in page.inner_text("#key-reason")
        page.fill("#key-input", "not-the-key")
        page.click("#key-ok")
        page.wait_for_function("() => document.getElementById('key-reason').textContent.includes('refused')")
        assert page.locator("#key-dialog[open]").count() == 1
        page.fill("#key-input", API_KEY)
        page.click("#key-ok")
        page.wait_for_selector("body.ready")
        model_id = web_server.health()["model"]
        assert page.inner_text("#model-name") == model_id
        assert page.evaluate("sessionStorage.getItem('lamina.apiKey')") == API_KEY
        assert API_KEY not in json.dumps(page.evaluate("Object.assign({}, localStorage)"))
        page.reload()  # same tab: the key is kept, nothing is asked
        page.wait_for_selector("body.ready")
        assert page.locator("#key-dialog[open]").count() == 0
        # a new tab asks again; cancelling shows the server's 401 message
        other = context.new_page()
        other.goto(web_server.url + "/")
        other.wait_for_selector("#key-dialog[open]")
        other.click("#key-cancel")
        other.wait_for_selector("#notice:not([hidden])")
        assert "Missing or wrong API key" in other.inner_text("#notice-text")
        assert "401" in other.inner_text("#notice-text")
    finally:
        context.close()


def test_chat_answer_streams_in_and_equals_what_the_server_sent(web, bodies):
    page = web.page
    web.open()
    card = page.evaluate("window.lamina.card")
    set_params(page, max_tokens=40)
    page.evaluate(OBSERVE)
    send(page, "Name three fruits as a Markdown list.")
    wait_answered(page)
    snaps = page.evaluate("window.__snaps")
    growing = sorted(set(n for n in snaps if n > 0))
    assert len(growing) >= 3, f"the answer did not arrive in pieces: {snaps}"
    streamed = deltas(sse(page, 0))
    chat = current_chat(page)
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant"]
    assert chat["messages"][1]["content"] == streamed.strip()
    assert "tokens" in page.inner_text(".msg.assistant .status")
    # sampling starts from the model's defaults (the server's model card)
    body = bodies[0]
    for k in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty",
              "frequency_penalty"):
        assert body[k] == card["sampling"][k], k
    assert body["max_tokens"] == 40 and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "Name three fruits as a Markdown list."}]


def test_stop_mid_stream_keeps_what_was_shown_and_a_busy_server_is_a_visible_429(web):
    page = web.page
    web.open()
    before = web.server.health()["requests"]["cancelled"]
    set_params(page, temperature=0, max_tokens=400)  # greedy: this answer runs to 400 tokens
    page.evaluate(OBSERVE)
    send(page, "Write a long story about a dragon who learns to cook, at least 1000 words.")
    page.wait_for_function("() => window.__snaps.length >= 4", timeout=60_000)
    # while the slot is busy (--queue 0), an extraction is refused with 429
    page.click("#tab-extract")
    page.fill("#ie-text", NER_TEXT)
    with page.expect_response("**/v1/extract") as refused:
        page.click("#ie-run")
    assert refused.value.status == 429
    page.wait_for_selector("#notice:not([hidden])")
    notice = page.inner_text("#notice-text")
    assert "busy" in notice and "429" in notice
    page.click("#tab-chat")
    assert page.locator(".msg.streaming").count() == 1  # the chat went on meanwhile
    page.click("#stop")
    wait_answered(page)
    shown = current_chat(page)["messages"][-1]
    assert shown["role"] == "assistant" and shown["meta"] == "stopped"
    assert page.inner_text(".msg.assistant .status") == "stopped"
    received = deltas(sse(page, 0)).strip()
    assert shown["content"] and received.startswith(shown["content"])
    web.idle()
    health = web.server.wait_for(lambda h: h["requests"]["cancelled"] == before + 1)
    assert health["slots"]["busy"] == 0


def test_regenerate_and_edit_the_last_message(web, bodies):
    page = web.page
    web.open()
    set_params(page, max_tokens=12)
    send(page, "Say hello.")
    wait_answered(page)
    page.click("button.regenerate")
    wait_answered(page)
    chat = current_chat(page)
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant"]
    assert chat["messages"][1]["content"] == deltas(sse(page, 1)).strip()
    page.click("button.edit")
    page.fill(".edit-box", "Say goodbye.")
    page.click("button.edit-save")
    wait_answered(page)
    chat = current_chat(page)
    assert [m["content"] for m in chat["messages"]][0] == "Say goodbye."
    assert len(chat["messages"]) == 2
    assert len(bodies) == 3
    assert bodies[1]["messages"] == bodies[0]["messages"]  # regenerate: the same question
    assert bodies[2]["messages"] == [{"role": "user", "content": "Say goodbye."}]


def test_enter_sends_shift_enter_is_a_new_line_and_ime_composition_never_sends(web, bodies):
    page = web.page
    web.open()
    set_params(page, max_tokens=4)
    page.click("#prompt")
    page.keyboard.insert_text("第一行")
    page.keyboard.press("Shift+Enter")
    page.keyboard.insert_text("第二行")
    assert page.input_value("#prompt") == "第一行\n第二行"
    # pinyin being composed: the Enter that picks a candidate belongs to the IME
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "ni", "selectionStart": 2, "selectionEnd": 2})
    page.keyboard.press("Enter")
    cdp.send("Input.insertText", {"text": "你"})
    assert not bodies and page.locator(".msg").count() == 0
    typed = page.input_value("#prompt")
    assert typed.startswith("第一行\n第二行") and "你" in typed
    page.keyboard.press("Enter")
    wait_answered(page)
    assert bodies[0]["messages"][-1]["content"] == typed


def test_system_prompt_params_and_chat_files_shared_with_lamina_chat(web, bodies, smollm2,
                                                                    tmp_path):
    import lamina

    page = web.page
    web.open()
    set_params(page, system="You are a terse assistant.", temperature=0.2, max_tokens=10)
    send(page, "Hi")
    wait_answered(page)
    body = bodies[0]
    assert body["messages"][0] == {"role": "system", "content": "You are a terse assistant."}
    assert body["temperature"] == 0.2 and body["max_tokens"] == 10
    with page.expect_download() as info:
        page.click("#export-chat")
    exported = tmp_path / "exported.json"
    info.value.save_as(exported)

    model = lamina.load(smollm2, n_threads=1, n_ctx=512)
    try:
        session = model.session()
        session.load(exported)  # what `lamina chat`'s /load does
        assert session.system == "You are a terse assistant."
        assert session.messages == [{"role": m["role"], "content": m["content"]}
                                    for m in current_chat(page)["messages"]]
        assert session.params.temperature == 0.2 and session.params.max_tokens == 10

        saved = model.session(system="用中文回答。")
        saved.messages = [{"role": "user", "content": "你好"},
                          {"role": "assistant", "content": "**你好**！有什么可以帮你？"}]
        saved.params = saved.params.replace(temperature=0.5)
        saved.save(tmp_path / "from-terminal.json")  # what `lamina chat`'s /save writes
    finally:
        model.close()
    page.set_input_files("#import-chat", str(tmp_path / "from-terminal.json"))
    page.wait_for_selector(".msg.assistant strong")
    assert page.inner_text(".msg.assistant strong") == "你好"
    assert page.locator("#conv-list li").count() == 2
    page.click("#settings-toggle")
    assert page.input_value("#system") == "用中文回答。"
    assert page.input_value("[data-param=temperature]") == "0.5"
    page.reload()  # kept in localStorage
    page.wait_for_selector("body.ready")
    assert page.locator("#conv-list li").count() == 2
    assert page.inner_text(".msg.user .text") == "你好"


def test_instruction_and_input_are_one_user_message_as_lamina_generate_joins_them(web, bodies):
    from lamina.ie.inputs import as_input, prompt_of

    page = web.page
    web.open()
    page.click("#tab-instruct")
    set_params(page, max_tokens=16)
    record = {"instruction": "Translate into English.", "input": "今天天气很好。"}
    page.fill("#instruction", record["instruction"])
    page.fill("#instruct-input", record["input"])
    page.click("#instruct-run")
    page.wait_for_selector("#instruct-run:not([hidden])", timeout=60_000)
    assert bodies[0]["messages"] == [{"role": "user", "content": prompt_of(as_input(record, default_id="1", need="prompt"))}]
    assert bodies[0]["max_tokens"] == 16
    assert page.inner_text("#instruct-output").strip()
    assert "tokens" in page.inner_text("#instruct-status")
    assert page.locator("#notice:not([hidden])").count() == 0


def marks_of(page, record: str = ".record") -> dict[str, list[str]]:
    return page.evaluate(f"""() => Object.fromEntries([...document.querySelectorAll(
        '{record} mark.span')].map((m) => [m.querySelector('.span-text').textContent,
                                           JSON.parse(m.dataset.labels)]))""")


@pytest.mark.slow
def test_ner_on_chinese_text_highlights_the_spans_the_server_returned(web):
    page = web.page
    web.open()
    page.click("#tab-extract")
    assert page.input_value("#ie-task") == "NER"
    chips = page.locator("#schema-chips .chip > span")
    assert chips.all_inner_texts() == NER_SCHEMA  # the task's example schema
    page.locator("#schema-chips .chip button").nth(2).click()  # remove 组织机构...
    assert chips.all_inner_texts() == NER_SCHEMA[:2]
    page.fill("#schema-add", "组织机构")  # ...and type it back in
    page.press("#schema-add", "Enter")
    assert chips.all_inner_texts() == NER_SCHEMA
    page.fill("#ie-text", NER_TEXT)
    page.fill("#ie-max-tokens", "200")
    with page.expect_response("**/v1/extract") as info:
        page.click("#ie-run")
    answer = info.value.json()
    assert info.value.request.post_data_json["schema"] == NER_SCHEMA
    result = answer["result"]
    page.wait_for_selector(".record")
    # expected from the JSON alone: every value found in the text, with its types
    expected: dict[str, list[str]] = {}
    missing: set[str] = set()
    for label, values in result.items():
        for value in values:
            if value and value in NER_TEXT:
                expected.setdefault(value, [])
                if label not in expected[value]:
                    expected[value].append(label)
            elif value:
                missing.add(value)
    assert expected, f"SmolLM2 returned no entity that is in the sentence: {result}"
    assert marks_of(page) == expected
    shown_text = page.inner_text(".record .spans .span-text")
    assert shown_text in NER_TEXT
    missing_shown = {t.split(": ", 1)[1] for t in page.locator(".missing-item").all_inner_texts()}
    assert missing_shown == missing
    assert json.loads(page.inner_text(".record pre.json")) == result
    assert page.inner_text("#ie-progress") == "1/1 done"
    screenshot(page, "web-extract")


@pytest.mark.slow
def test_jsonl_upload_and_results_download(web, tmp_path):
    page = web.page
    web.open()
    page.click("#tab-extract")
    docs = tmp_path / "news.jsonl"
    docs.write_text("\n".join([
        json.dumps({"id": "a", "text": NER_TEXT, "label": GOLD, "source": "news"},
                   ensure_ascii=False),
        "{not json",
        json.dumps({"id": "b", "input": "王小明从广州出发，乘坐高铁前往武汉。"}, ensure_ascii=False),
    ]) + "\n", encoding="utf-8")
    page.check("input[name=input-mode][value=file]")
    page.set_input_files("#ie-file", str(docs))
    page.wait_for_function("() => document.getElementById('ie-file-info').textContent.includes('2 document')")
    assert "line 2 is not valid JSON" in page.inner_text("#ie-file-info")
    assert "1 record(s) skipped" in page.inner_text("#ie-file-info")
    page.fill("#ie-max-tokens", "160")
    answers: list = []
    page.on("response", lambda r: answers.append(r) if r.url.endswith("/v1/extract") else None)
    page.click("#ie-run")
    page.wait_for_function("() => document.getElementById('ie-progress').textContent"
                           ".startsWith('2/2 done')", timeout=120_000)
    with page.expect_download() as info:
        page.click("#ie-download")
    assert info.value.suggested_filename == "news.NER.jsonl"
    out = tmp_path / "out.jsonl"
    info.value.save_as(out)
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["id"] for r in records] == ["a", "b"]
    assert [r["input"] for r in records] == [NER_TEXT, "王小明从广州出发，乘坐高铁前往武汉。"]
    assert records[0]["label"] == GOLD and records[0]["source"] == "news"  # kept, as lamina extract does
    assert len(answers) == 2
    for record, answer in zip(records, answers, strict=True):
        body = answer.json()
        if answer.status == 200:  # the server's result, as it sent it
            assert record["result"] == body["result"] and "error" not in record
        else:  # this document's own failure (e.g. cut at max_tokens): recorded, run goes on
            assert answer.status == 400
            assert record["error"].startswith(body["error"]["message"]) and record["result"] == {}
    assert records[0]["result"], "SmolLM2 should answer the first document within 160 tokens"
    assert page.locator(".record").count() == 2


def test_server_errors_are_shown_bad_schema_and_context_too_long(web):
    page = web.page
    web.open()
    page.click("#tab-extract")
    page.check("input[name=schema-mode][value=json]")
    page.fill("#schema-json", '{"人物": 1}')
    page.fill("#ie-text", NER_TEXT)
    page.click("#ie-run")
    page.wait_for_selector("#notice:not([hidden])")
    notice = page.inner_text("#notice-text")
    assert "described schema" in notice and "HTTP 400" in notice
    assert page.locator(".record").count() == 0
    page.click("#tab-chat")
    long_text = "hello " * 1500  # more tokens than the server's --ctx 1024
    send(page, long_text)
    page.wait_for_function("() => document.getElementById('notice-text').textContent.includes('context')")
    assert "HTTP 400" in page.inner_text("#notice-text")
    wait_answered(page)
    assert page.input_value("#prompt") == long_text  # the message is not lost
    assert current_chat(page)["messages"] == []


def test_phone_width_layout_and_chat_screenshot(browser, web_server):
    context = browser.new_context(viewport={"width": 390, "height": 780}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    try:
        run = PageRun(context.new_page(), web_server)
        page = run.page
        run.open()

        def no_sideways_scroll() -> None:
            assert page.evaluate("document.documentElement.scrollWidth") <= 390

        no_sideways_scroll()
        box = page.locator("#composer").bounding_box()
        assert box and box["y"] + box["height"] <= 780 and box["width"] <= 390
        assert page.locator("#convs").bounding_box()["x"] < 0  # the chat list is tucked away
        page.click("#convs-toggle")
        page.wait_for_function("() => document.getElementById('convs').getBoundingClientRect().x >= 0")
        page.click("#convs-close")
        for tab in ("#tab-instruct", "#tab-extract"):
            page.click(tab)
            no_sideways_scroll()
        page.click("#tab-chat")
        page.fill("#prompt", "你好！请用一句话介绍你自己。")
        screenshot(page, "web-phone")
        assert not run.errors and not run.foreign_requests()
    finally:
        context.close()


def test_docs_screenshots_of_a_real_answer(web):
    """A real greedy SmolLM2 answer with a code block, for docs/web.md."""
    page = web.page
    web.open()
    set_params(page, temperature=0, max_tokens=80)
    send(page, "Write a Python function that adds two numbers, in a code block.")
    wait_answered(page)
    assert page.locator(".msg.assistant .code pre code").count() >= 1
    screenshot(page, "web-chat")


MARKDOWN_CASES = {
    "# Title\n\nSome **bold**, *italic* and `code`.": (
        "<h1>Title</h1><p>Some <strong>bold</strong>, <em>italic</em> and <code>code</code>.</p>"),
    "- a\n- b\n  - b1\n- c": "<ul><li>a</li><li>b<ul><li>b1</li></ul></li><li>c</li></ul>",
    "1. one\n2. two": "<ol><li>one</li><li>two</li></ol>",
    "| 名称 | 数量 |\n|:---|---:|\n| 苹果 | 3 |": (
        '<div class="table-wrap"><table><thead><tr><th class="al-left">名称</th>'
        '<th class="al-right">数量</th></tr></thead><tbody><tr><td class="al-left">苹果</td>'
        '<td class="al-right">3</td></tr></tbody></table></div>'),
    "```python\nif a < b:\n    print('<b>')\n```": (
        '<div class="code"><div class="code-head"><span>python</span><button type="button" '
        'class="copy">copy</button></div><pre><code class="language-python">if a &lt; b:\n'
        "    print(&#39;&lt;b&gt;&#39;)</code></pre></div>"),
    "```\nunclosed while streaming": (
        '<div class="code"><div class="code-head"><span>code</span><button type="button" '
        'class="copy">copy</button></div><pre><code>unclosed while streaming</code></pre></div>'),
    "> quoted\n\n---\nline one\nline two": (
        "<blockquote><p>quoted</p></blockquote><hr><p>line one<br>line two</p>"),
    "[lamina](https://example.org/a_b?x=1&y=2) and [bad](javascript:void0)": (
        '<p><a href="https://example.org/a_b?x=1&amp;y=2" target="_blank" '
        'rel="noopener noreferrer">lamina</a> and bad</p>'),
}

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    "<img src=x onerror=\"window.__pwned = 1\">",
    "[x](javascript:window.__pwned=1)",
    "| a |\n|---|\n| <svg onload=window.__pwned=1> |",
    "```\n</code></pre><img src=x onerror=window.__pwned=1>\n```",
    "- <iframe src=javascript:window.__pwned=1>",
    '[x](https://a.b/"onmouseover="window.__pwned=1)',
    "`<b>` **<i>x</i>**",
]


def test_markdown_renderer_output_and_escaping(web):
    page = web.page
    web.open()
    rendered = page.evaluate("""async (cases) => {
        const { renderMarkdown } = await import('/ui/js/markdown.js');
        return cases.map(renderMarkdown);
    }""", list(MARKDOWN_CASES))
    assert dict(zip(MARKDOWN_CASES, rendered, strict=True)) == MARKDOWN_CASES
    report = page.evaluate("""async (cases) => {
        const { renderMarkdown } = await import('/ui/js/markdown.js');
        const allowed = new Set(['P','BR','STRONG','EM','DEL','CODE','PRE','A','H1','H2','H3','H4',
            'H5','H6','UL','OL','LI','BLOCKQUOTE','HR','TABLE','THEAD','TBODY','TR','TH','TD','DIV',
            'SPAN','BUTTON']);
        const out = [];
        for (const md of cases) {
            const box = document.createElement('div');
            box.innerHTML = renderMarkdown(md);
            document.body.append(box);
            for (const el of box.querySelectorAll('*')) {
                if (!allowed.has(el.tagName)) out.push(`${md}: <${el.tagName}>`);
                for (const a of el.attributes) {
                    if (!['class', 'href', 'target', 'rel', 'type', 'start'].includes(a.name)) {
                        out.push(`${md}: attribute ${a.name}`);
                    }
                    if (a.name === 'href' && !/^(https?:|mailto:)/.test(a.value)) out.push(`${md}: href ${a.value}`);
                }
            }
            box.remove();
        }
        return { out, pwned: window.__pwned || 0 };
    }""", HOSTILE)
    assert report == {"out": [], "pwned": 0}


def test_spans_of_every_task_shape(web):
    page = web.page
    web.open()
    got = page.evaluate("""async () => {
        const { mentions, layout } = await import('/ui/js/spans.js');
        const text = '郭碧婷与向佐在台北订婚，向佐是演员。';
        const cases = {
            RE: mentions('RE', {'配偶': [{'subject': '郭碧婷', 'object': '向佐'}]}),
            EET: mentions('EET', {'人生-订婚': ['订婚']}),
            EE: mentions('EE', {'人生-订婚': [{'trigger': '订婚', 'arguments': {'订婚主体': ['郭碧婷', '向佐'], '时间': 'NAN'}}]}),
            EEA: mentions('EEA', {'人生-订婚': [{'订婚主体': '向佐', '地点': '台北'}]}),
            KG: mentions('KG', {'人物': {'向佐': {'职业': '演员', '配偶': ['郭碧婷']}}}),
        };
        const lay = layout(text, [{label: '人物', text: '向佐'}, {label: '地点', text: '台北'},
                                  {label: '人物', text: '向佐是演员'}, {label: '机构', text: '不存在'}]);
        return { cases, lay };
    }""")
    pairs = {task: [(m["label"], m["text"]) for m in ms] for task, ms in got["cases"].items()}
    assert pairs == {
        "RE": [("配偶", "郭碧婷"), ("配偶", "向佐")],
        "EET": [("人生-订婚", "订婚")],
        "EE": [("人生-订婚", "订婚"), ("订婚主体", "郭碧婷"), ("订婚主体", "向佐")],
        "EEA": [("订婚主体", "向佐"), ("地点", "台北")],
        "KG": [("人物", "向佐"), ("职业", "演员"), ("配偶", "郭碧婷")],
    }
    segments = [(s["text"], s["labels"]) for s in got["lay"]["segments"]]
    # every occurrence is marked; the longer overlapping value wins
    assert segments == [("郭碧婷与", None), ("向佐", ["人物"]), ("在", None), ("台北", ["地点"]),
                        ("订婚，", None), ("向佐是演员", ["人物"]), ("。", None)]
    assert got["lay"]["missing"] == [{"text": "不存在", "labels": ["机构"]}]


def test_every_request_stays_on_the_server(web):
    """No CDN, no outside fonts: the page loads and works on this server alone."""
    web.open()
    assert web.requests and not web.foreign_requests()
    assert any(u.endswith("/ui/style.css") for u in web.requests)
