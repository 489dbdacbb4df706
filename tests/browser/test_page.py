"""The page in real Chromium (Debian's, driven by Playwright) against the private real stack.

Screenshots of each screen are saved to test-artifacts/screenshots/.
"""

import csv
import io
import re
import shutil
import zipfile

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests import images
from tests.stack import API, ARTIFACTS

SHOTS = ARTIFACTS / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Strokes in canvas pixels (280 x 280), drawn as a person would with the mouse.
SEVEN = [[(70, 60), (210, 60), (190, 110), (150, 180), (125, 240)]]
ZERO = [[(140, 45), (95, 70), (75, 140), (95, 215), (140, 240), (185, 215), (205, 140), (185, 70), (140, 45)]]


@pytest.fixture(scope="module")
def browser():
    shutil.rmtree(SHOTS, ignore_errors=True)  # only this run's pictures
    SHOTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, gateway, settings):
    """The page as a person who gave it the stack's key once."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    foreign = []
    page.on(
        "request", lambda r: None if r.url.startswith((gateway, "blob:", "data:")) else foreign.append(r.url)
    )
    page.goto(gateway + "/")
    give_key(page, settings.api_key)
    yield page
    context.close()
    assert not foreign, f"the page must work offline; it asked for {foreign}"


def give_key(page: Page, key: str) -> None:
    page.get_by_label("API key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#key-held")).to_be_visible()


def draw(page: Page, strokes) -> None:
    box = page.locator("#canvas").bounding_box()
    scale = box["width"] / 280
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=8)
        page.mouse.up()


@pytest.mark.parametrize(("strokes", "label"), [(SEVEN, "7"), (ZERO, "0")], ids=["seven", "zero"])
def test_draw_predict_shows_the_digit_and_ten_bars(page, strokes, label):
    draw(page, strokes)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#answer .digit")).to_have_text(label, timeout=30_000)
    expect(page.locator("#answer .bars li")).to_have_count(10)
    expect(page.locator("#answer .bar.best")).to_have_attribute("data-digit", label)
    expect(page.locator("#answer .confidence")).to_contain_text("% sure")
    page.screenshot(path=SHOTS / f"draw-{label}.png", full_page=True)


def test_predict_waits_out_a_sigkilled_gateway_and_says_so(page, stack):
    """The gateway dies after the page has loaded: Predict waits for it, saying so, and shows
    the answer once it is back; every try of the drawing's upload carries the same key."""
    keys = []
    page.on(
        "request",
        lambda r: keys.append(r.headers.get("idempotency-key")) if r.method == "POST" else None,
    )
    stack.kill("gateway")
    try:
        draw(page, SEVEN)
        page.get_by_role("button", name="Predict").click()
        expect(page.locator("#service-status")).to_have_text(
            "Waiting for the service: the server cannot be reached", timeout=15_000
        )
        page.screenshot(path=SHOTS / "waiting-for-the-service.png", full_page=True)
    finally:
        stack.start_gateway()
        stack.wait_gateway_ready()
    expect(page.locator("#answer .digit")).to_have_text("7", timeout=60_000)
    expect(page.locator("#service-status")).to_be_hidden()
    assert len(keys) >= 2 and len(set(keys)) == 1 and keys[0], keys


def test_uploads_get_a_key_where_the_page_is_not_a_secure_context(page):
    """Served over plain HTTP from another host, the page has no crypto.randomUUID."""
    keys = page.evaluate(
        "() => { Object.defineProperty(crypto, 'randomUUID', {value: undefined});"
        " return [newKey(), newKey()]; }"
    )
    assert keys[0] != keys[1] and all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)


def test_keyboard_clears_and_predict_asks_for_a_drawing(page):
    draw(page, SEVEN)
    page.locator("#clear").focus()
    page.keyboard.press("Enter")
    page.locator("#predict").focus()
    page.keyboard.press("Space")
    expect(page.locator("#answer .error")).to_have_text("Draw a digit first, then press Predict.")


def test_a_dot_drawn_says_no_digit(page):
    draw(page, [[(40, 40), (42, 42)]])
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#answer .digit.none")).to_have_text("No digit", timeout=30_000)
    expect(page.locator("#answer")).to_contain_text("holds only a dot")


def test_blank_upload_says_no_digit(page, tmp_path):
    blank = tmp_path / "blank.png"
    blank.write_bytes(images.blank_png())
    page.locator("#files").set_input_files(blank)
    row = page.locator("#uploads li").filter(has_text="blank.png")
    expect(row.locator(".status")).to_have_text("done", timeout=30_000)
    expect(row.locator(".digit.none")).to_have_text("No digit")


def test_upload_reaches_done_and_a_broken_file_shows_its_error(page, tmp_path):
    good = tmp_path / "four.png"
    good.write_bytes(images.encode(images.ink_on_paper(4, 5, size=211)))
    broken = tmp_path / "broken.png"
    broken.write_bytes(images.truncated(images.png_digit(6)))
    page.locator("#files").set_input_files([good, broken])
    rows = page.locator("#uploads li")
    expect(rows).to_have_count(2)
    good_row = rows.filter(has_text="four.png")
    expect(good_row.locator(".status")).to_have_text("done", timeout=30_000)
    expect(good_row.locator(".digit")).to_have_text("4")
    expect(good_row.locator("img.thumb")).to_be_visible()
    bad_row = rows.filter(has_text="broken.png")
    expect(bad_row.locator(".status")).to_have_text("rejected", timeout=30_000)
    expect(bad_row.locator(".error")).to_contain_text("truncated")
    page.locator("#upload").screenshot(path=SHOTS / "upload.png")


def test_dropped_file_is_recognised(page):
    data = images.encode(images.ink_on_paper(9, 4, size=223))
    # A drop event carrying a real File, as the browser makes when a file is dragged onto the page.
    dropped = page.evaluate_handle(
        """bytes => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "dropped-nine.png", {type: "image/png"}));
            return transfer;
        }""",
        list(data),
    )
    page.dispatch_event("#dropzone", "dragover", {"dataTransfer": dropped})
    expect(page.locator("#dropzone")).to_have_class("dropzone over")
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": dropped})
    row = page.locator("#uploads li").filter(has_text="dropped-nine.png")
    expect(row.locator(".status")).to_have_text("done", timeout=30_000)
    expect(row.locator(".digit")).to_have_text("9")


def test_zip_becomes_a_batch_that_reaches_100_percent_with_its_csv(page, tmp_path):
    archive = tmp_path / "digits.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for d in range(6):
            zf.writestr(f"digits/{d}.png", images.encode(images.ink_on_paper(d, 6, size=203)))
        zf.writestr("digits/readme.txt", "not an image")
    page.locator("#files").set_input_files(archive)
    card = page.locator("#batch-list article.batch")
    expect(card).to_have_count(1, timeout=30_000)
    expect(card.locator(".progress")).to_have_attribute("aria-valuenow", "100", timeout=60_000)
    expect(card.locator(".batch-state")).to_contain_text("100")
    expect(card.locator(".counts")).to_contain_text("6 of 6 finished: 6 done, 0 failed")
    expect(card.locator(".refused")).to_contain_text("readme.txt")
    page.locator("#batches").screenshot(path=SHOTS / "batch.png")
    # The link fetches the CSV with the key (a plain link would send none) and saves it.
    with page.expect_download() as download:
        card.locator("a.csv").click()
    saved = tmp_path / "saved.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert sorted((r["file"], r["label"]) for r in rows) == [(f"digits/{d}.png", str(d)) for d in range(6)]
    # The batch reopens from the address bar.
    page.reload()
    expect(page.locator("#batch-list article.batch .progress")).to_have_attribute("aria-valuenow", "100")


def test_several_images_as_one_batch(page, tmp_path):
    files = []
    for d in (2, 5, 8):
        path = tmp_path / f"many-{d}.png"
        path.write_bytes(images.encode(images.ink_on_paper(d, 3, size=217)))
        files.append(path)
    page.get_by_label("Send several images as one batch").check()
    page.locator("#files").set_input_files(files)
    card = page.locator("#batch-list article.batch")
    expect(card.locator(".batch-name")).to_have_text("3 images", timeout=30_000)
    expect(card.locator(".counts")).to_contain_text("3 of 3 finished: 3 done", timeout=60_000)
    expect(page.locator("#uploads li")).to_have_count(0)
    batch_id = card.get_attribute("data-batch-id")
    expect(page.locator("#recent-batches li").first).to_have_attribute("data-batch-id", batch_id)
    expect(page.locator("#recent-batches li").first).to_contain_text("3 images")


def test_the_page_asks_for_a_key_once_and_keeps_it(browser, gateway, settings):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(gateway + "/")
    expect(page.locator("#key-message")).to_contain_text("Enter your API key")
    expect(page.locator("#key-form")).to_be_visible()
    page.screenshot(path=SHOTS / "key.png")
    give_key(page, "recog_0123456789abcdef_" + "x" * 43)  # well-formed, but no such key
    # The recent-batches call refuses it at once and the key form comes back: wait for that, as
    # the page moves while it does (a digit drawn meanwhile would miss the canvas).
    expect(page.locator("#key-message")).to_contain_text("refused the key", timeout=20_000)
    expect(page.locator("#key-form")).to_be_visible()
    draw(page, SEVEN)
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#answer")).to_contain_text("revoked", timeout=20_000)  # the 401's message
    give_key(page, settings.api_key)
    expect(page.locator("#key-form")).to_be_hidden()
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#answer .digit")).to_have_text("7", timeout=60_000)
    page.reload()
    expect(page.locator("#key-held")).to_be_visible()
    expect(page.locator("#key-form")).to_be_hidden()
    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#key-form")).to_be_visible()
    context.close()


def test_links_to_flower_and_the_api_docs(page, settings):
    expect(page.get_by_role("link", name="Flower")).to_have_attribute("href", settings.flower_url)
    page.get_by_role("link", name="API docs").click()
    expect(page.locator(".endpoint")).not_to_have_count(0)
    expect(page.locator("#endpoints")).to_contain_text("/v1/batches/{batch_id}/results")
    page.screenshot(path=SHOTS / "docs.png", full_page=True)


def test_readable_on_a_phone(browser, gateway):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(gateway + "/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    box = page.locator("#canvas").bounding_box()
    assert box["width"] <= 390 and box["width"] >= 200
    page.screenshot(path=SHOTS / "phone.png", full_page=True)
    context.close()


def test_a_batch_is_cancelled_from_its_card(page, stack, gateway):
    """No worker runs while the batch is cancelled, so none of it can end first; the card follows
    it to 'cancelled' once a worker is back."""
    stack.stop_workers()
    try:
        files = [("files", (f"c{d}.png", images.png_digit(d))) for d in range(5)]
        batch = API.post(f"{gateway}/v1/batches", files=files, data={"name": "to cancel"}, timeout=60).json()
        page.get_by_label("Batch id").fill(batch["id"])
        page.get_by_role("button", name="Open").click()
        card = page.locator(f"#batch-list article.batch[data-batch-id='{batch['id']}']")
        expect(card.locator(".batch-state")).to_contain_text("queued", timeout=30_000)
        card.get_by_role("button", name="Cancel batch").click()
        expect(card.locator(".batch-state")).to_contain_text("cancelling", timeout=30_000)
        expect(card.get_by_role("button", name="Cancel batch")).to_be_hidden()
    finally:
        stack.start_workers()
    expect(card.locator(".batch-state")).to_contain_text("cancelled", timeout=180_000)
    expect(card.locator(".counts")).to_contain_text("5 of 5 finished: 0 done, 0 failed, 5 cancelled")
    page.locator("#batches").screenshot(path=SHOTS / "batch-cancelled.png")
