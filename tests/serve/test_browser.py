"""A real browser (Debian's headless chromium, driven by Playwright) uses the page served by a real
``coderclip serve -m testbed -k testbed`` process: it uploads a real photo and must show the same
top classes and deciding texts as the API gives for that photo; a photo dropped on the page too.
The server requires an API key, which the page asks for."""

from __future__ import annotations

import base64
import shutil

import httpx
import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is missing: `make install` installs it "
                    "(apt-get install -y chromium)")
    return path


@pytest.mark.slow
def test_page_shows_the_api_answer_for_an_uploaded_photo(testbed_server, sample_photos):
    from playwright.sync_api import sync_playwright

    photo = sample_photos / "imagenet_03_990.jpg"
    api = httpx.post(testbed_server.url + "/v1/classify", timeout=60, headers=testbed_server.headers,
                     files=[("images", (photo.name, photo.read_bytes(), "image/jpeg"))],
                     data={"top_k": "4", "explain": "true"})
    assert api.status_code == 200, api.text
    want = api.json()["results"][0]
    assert want["explanation"], "the API gave no explanation"
    dropped = sample_photos / "cifar10_01_8.png"
    want_dropped = httpx.post(testbed_server.url + "/v1/classify", timeout=60,
                              headers=testbed_server.headers,
                              files=[("images", (dropped.name, dropped.read_bytes(), "image/png"))]
                              ).json()["results"][0]

    requests, console_errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.goto(testbed_server.url + "/")
            # the server wants a key: the page asks for it, then loads the model's description
            page.wait_for_selector("#api-key", state="visible")
            assert "API key" in page.inner_text("#model-line")
            page.fill("#api-key", testbed_server.headers["Authorization"].split()[1])
            page.dispatch_event("#api-key", "change")
            page.wait_for_selector("#method option[value='coder-rerank']", state="attached")
            assert "testbed" in page.inner_text("#model-line")
            page.fill("#top-k", "4")
            page.check("#explain")
            page.set_input_files("#file-input", str(photo))
            page.wait_for_selector(".result .top1-label")
            top1 = page.inner_text(".result .top1-label")
            labels = page.locator(".result .bars .label").all_inner_texts()
            scores = page.locator(".result .bars .score").all_inner_texts()
            texts = page.locator(".result .explanation-row td.text").all_inner_texts()
            name = page.inner_text(".result .image-name")

            # the same page, a second photo dropped on the drop zone (a real DataTransfer in
            # the browser, carrying the file's bytes)
            page.evaluate("""([b64, fname]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], fname, {type: "image/png"}));
                document.querySelector("#drop").dispatchEvent(
                    new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
            }""", [base64.b64encode(dropped.read_bytes()).decode(), dropped.name])
            page.wait_for_function("(n) => document.querySelector('.result .image-name')"
                                   "?.textContent === n", arg=dropped.name)
            dropped_top1 = page.inner_text(".result .top1-label")
        finally:
            browser.close()

    assert name == photo.name
    assert top1 == want["label"]
    assert labels == [q["label"] for q in want["predictions"]]
    assert scores == [f"{100 * q['score']:.1f}%" for q in want["predictions"]]
    assert texts == [e["text"] for e in want["explanation"]]
    assert dropped_top1 == want_dropped["label"]
    assert all(u.startswith(testbed_server.url) or u.startswith("blob:") for u in requests), requests
    # the only console error allowed: the page's first, keyless request for the model description
    assert [e for e in console_errors if "401" not in e] == [], console_errors
