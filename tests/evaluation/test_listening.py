"""chroma-keras listen: session building, the blind page over HTTP, SQLite storage, summary, and a headless-Chromium run."""

import json
import re
import shutil
import sqlite3
import threading
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

import chroma_keras as ck
from chroma_keras.cli import main
from chroma_keras.data.demo_corpus import write_demo_corpus
from chroma_keras.errors import ModelInputError
from chroma_keras.evaluation.intervals import bootstrap_interval
from chroma_keras.evaluation.listening import RatingStore, build_session, load_items
from chroma_keras.evaluation.listening.server import DB_FILE, listener_order, make_server
from chroma_keras.generation.sample_files import write_samples

TINY_VAE = {"model.vae.encoder_filters": [4], "model.vae.hidden_dim": 8, "model.vae.latent_dim": 2}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("listen")
    generated = root / "green"
    write_samples(ck.from_preset("cvae_chromatic", **TINY_VAE), "Green", generated, num_samples=2, audio="additive")
    corpus = write_demo_corpus(root / "c.parquet", songs_per_colour=1, segments_per_song=2)
    build_session(root / "session", [generated], corpus, num_real=2, split="all")
    return root / "session"


@pytest.fixture
def served(session, tmp_path):
    copy = tmp_path / "session"
    shutil.copytree(session, copy)
    server = make_server(copy, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield copy, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(url):
    with urllib.request.urlopen(url) as response:
        return response.read().decode()


def _post(url, **form):
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data)) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_session_hides_which_items_are_real(session):
    items = load_items(session)
    assert sorted(item["kind"] for item in items) == ["generated", "generated", "real", "real"]
    media = sorted(p.name for p in (session / "media").iterdir())
    assert media == sorted(f"{item['id']}.{ext}" for item in items for ext in ("wav", "png"))
    assert all(re.fullmatch(r"[0-9a-f]{16}\.(wav|png)", name) for name in media)
    with pytest.raises(ModelInputError, match="already holds a session"):
        build_session(session, [], "demo")


def test_a_listener_rates_every_item_in_their_own_order(served):
    folder, base = served
    items = {item["id"]: item for item in load_items(folder)}
    assert "<form action='/trial'" in _get(base + "/")
    seen = []
    for step in range(len(items)):
        page = _get(base + "/trial?listener=ann")
        (item,) = set(re.findall(r"/media/([0-9a-f]{16})\.wav", page))
        assert f"/media/{item}.png" in page and item not in seen
        for hidden in ("Green", "sample_", "real_"):
            assert hidden not in page.split("<form")[0]  # nothing above the form names the item's origin
        seen.append(item)
        status, _ = _post(base + "/rate", listener="ann", item=item, rating=str(1 + step % 5), choice="real")
        assert status == 200
    assert seen == listener_order("ann", items)
    assert "id='done'" in _get(base + "/trial?listener=ann")
    with sqlite3.connect(folder / DB_FILE) as db:
        rows = db.execute("SELECT listener, item, rating, choice FROM ratings ORDER BY created").fetchall()
    assert [(r[1], r[2]) for r in rows] == [(item, 1 + i % 5) for i, item in enumerate(seen)]
    assert sorted(listener_order("ann", items)) == sorted(items)

    # Bad answers are refused with the reason and nothing is stored.
    status, body = _post(base + "/rate", listener="bob", item=seen[0], rating="7", choice="real")
    assert status == 400 and "rating must be an integer in (1, 5)" in body
    status, body = _post(base + "/rate", listener="bob", item="0" * 16, rating="3", choice="real")
    assert status == 400 and "unknown item" in body
    status, body = _post(base + "/rate", listener="bob", item=seen[0], rating="3", choice="maybe")
    assert status == 400 and "choice must be one of" in body
    with sqlite3.connect(folder / DB_FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM ratings WHERE listener = 'bob'").fetchone() == (0,)


def test_summary_and_export_use_the_stored_answers(session, tmp_path, capsys):
    folder = tmp_path / "session"
    shutil.copytree(session, folder)
    items = load_items(folder)
    store = RatingStore(folder / DB_FILE, items)
    answers = {}
    for listener, ratings in (("ann", [5, 4, 2, 1]), ("bob", [4, 4, 3, 2])):
        for item, rating in zip(items, ratings):
            choice = "real" if rating >= 3 else "generated"
            store.add(listener, item["id"], rating, choice)
            answers[(listener, item["id"])] = (rating, choice, item["kind"])
    summary = store.summary(seed=0)
    real = [r for r, _, kind in answers.values() if kind == "real"]
    identified = [float(c == kind) for _, c, kind in answers.values()]
    expected = bootstrap_interval(np.asarray(real, np.float64), seed=0)
    assert (summary["real"].value, summary["real"].low, summary["real"].high) == (expected.value, expected.low, expected.high)
    assert summary["identified"].value == pytest.approx(np.mean(identified))
    assert summary["listeners"] == 2 and summary["answers"] == 8
    # The same figures through the command, and the CSV export with the key joined in.
    assert main(["listen", "--session", str(folder), "--summary", "--export", str(tmp_path / "r.csv")]) == 0
    printed = capsys.readouterr().out
    assert "8 answers from 2 listeners" in printed and f"{expected.value:.3g} [{expected.low:.3g}, {expected.high:.3g}]" in printed
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "listener,item,rating,choice,kind,colour,created" and len(lines) == 9


def test_a_generate_folder_without_audio_is_refused(tmp_path):
    folder = tmp_path / "silent"
    write_samples(ck.from_preset("cvae_chromatic", **TINY_VAE), "Red", folder, num_samples=1, audio=None)
    with pytest.raises(ModelInputError, match="has no audio render"):
        build_session(tmp_path / "s", [folder], "demo")
    assert main(["listen", "--session", str(tmp_path / "nothing"), "--summary"]) == 2


def _browser():
    """A headless Chromium driven by Selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them when apt-get works)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    try:
        return webdriver.Chrome(service=Service(driver), options=options)
    except Exception as exc:  # noqa: BLE001 - any start-up failure means the browser cannot run here
        pytest.skip(f"headless chromium could not start: {exc}")


def test_a_listener_completes_the_test_in_headless_chromium(served):
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    folder, base = served
    browser = _browser()
    try:
        browser.get(base + "/")
        browser.find_element(By.ID, "listener").send_keys("carol")
        browser.find_element(By.ID, "start").click()
        count = len(load_items(folder))
        # Elements of a page being replaced go stale or missing; the wait retries until the next page is in.
        wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))
        for step in range(count):
            # Each submit loads the next page; wait for it before answering.
            wait.until(lambda b, step=step: f"Segment {step + 1} of {count}" in b.find_element(By.TAG_NAME, "h1").text)
            browser.find_element(By.ID, f"rating{1 + step % 5}").click()
            browser.find_element(By.ID, "choice-generated" if step % 2 else "choice-real").click()
            browser.find_element(By.ID, "submit").click()
        done = wait.until(lambda b: b.find_elements(By.ID, "done"))
        assert done[0].text.startswith(f"You rated all {count}")
    finally:
        browser.quit()
    with sqlite3.connect(folder / DB_FILE) as db:
        rows = db.execute("SELECT rating, choice FROM ratings WHERE listener = 'carol' ORDER BY created").fetchall()
    assert rows == [(1 + i % 5, "generated" if i % 2 else "real") for i in range(count)]
