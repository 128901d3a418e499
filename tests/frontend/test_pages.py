"""The kiosk and the twin dashboard in a real headless Chromium against the real server.

Chromium's fake camera plays a video made from rendered product frames and a real face photo.
Screenshots land in tests/results/screenshots/; the dashboard with an open alert and the kiosk with a
logged-in shopper's cart also replace docs/twin-dashboard.png and docs/kiosk.png.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright import sync_api as playwright_api

from models.store.render import catalogue_looks, render_scene
from tests.support.fake_camera import write_y4m
from tests.support.paths import PROJECT_ROOT, SCREENSHOTS
from tests.support.server import ADMIN_TOKEN
from tests.support.store_frames import group_face
from tests.support.twin_stream import copied_ensemble

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def scene(class_ids: list[int], seed: int) -> np.ndarray:
    image, _ = render_scene(np.random.default_rng(seed), catalogue_looks(), size=480, classes=class_ids, distractors=0)
    return image


def face_frame() -> np.ndarray:
    """The shopper (person 1 of the group photo), cropped and scaled unlike the registration photo."""
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[:, 80:560] = group_face(1, 0.7, 480)
    return canvas


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: install Debian's chromium (.ci/run does)")
    video = write_y4m(tmp_path_factory.mktemp("camera") / "kiosk.y4m", [
        (scene([0], seed=1), 4.0),   # a product for the cart
        (face_frame(), 8.0),         # the shopper's face
        (scene([2], seed=2), 4.0),   # another product
        (scene([], seed=3), 6.0),    # nothing
    ])
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"])
        yield browser
        browser.close()


def shot(page, name: str, docs_name: str | None = None) -> None:
    """A screenshot in tests/results/screenshots/; with `docs_name` also docs/<docs_name>.png, the picture
    the README and docs show (so they show the pages as they are)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    if docs_name:
        page.screenshot(path=str(PROJECT_ROOT / "docs" / f"{docs_name}.png"))


def test_kiosk_cart_remove_register_login_and_checkout(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(f"{server.http}/?session=browser-kiosk&fps=5&token={ADMIN_TOKEN}")
    page.wait_for_selector("#conn.on", timeout=30_000)
    page.wait_for_selector("#cart tbody tr", timeout=60_000)
    assert page.locator("#cart tbody tr").first.inner_text().startswith("元翠茶")
    shot(page, "kiosk-cart")
    page.locator("#cart tbody tr button").first.click()
    page.wait_for_function("document.querySelectorAll('#cart tbody tr').length === 0 || "
                           "!document.querySelector('#cart tbody').innerText.includes('元翠茶')", timeout=10_000)

    photo = tmp_path / "me.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(group_face(1, 1.2, 360), cv2.COLOR_RGB2BGR))
    page.locator("details.card summary").click()
    page.fill("input[name=name]", "Ada Shopper")
    page.fill("input[name=phone]", "0912345678")
    page.set_input_files("input[name=photo]", str(photo))
    page.click("#register button[type=submit]")
    page.wait_for_function("document.querySelector('#register-result').innerText !== ''", timeout=60_000)
    assert "Registered Ada Shopper" in page.inner_text("#register-result"), page.inner_text("#register-result")
    page.wait_for_function("document.querySelector('#user').innerText.includes('Ada Shopper')", timeout=90_000)
    page.wait_for_function("document.querySelector('#cart tbody').innerText.includes('烏龍茶')", timeout=90_000)
    shot(page, "kiosk-logged-in", docs_name="kiosk")
    page.click("#checkout")
    page.wait_for_selector("#checkout-result.ok", timeout=30_000)
    assert page.inner_text("#checkout-result").startswith("Paid")
    shot(page, "kiosk-checkout")

    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(f"{server.http}/?session=browser-phone&token={ADMIN_TOKEN}")
    phone.wait_for_selector("#conn.on", timeout=30_000)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "kiosk-phone")


def test_kiosk_shows_the_server_error_on_empty_checkout(server, browser):
    page = browser.new_page()
    page.goto(f"{server.http}/?session=browser-empty&token={ADMIN_TOKEN}")
    page.wait_for_selector("#conn.on", timeout=30_000)  # the checkout goes over the kiosk's connection
    page.click("#checkout")
    page.wait_for_selector("#checkout-result.error", timeout=20_000)
    assert "log in" in page.inner_text("#checkout-result")


def test_twin_dashboard_streams_and_charts(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server.http}/twin?token={ADMIN_TOKEN}")
    page.wait_for_function("document.querySelectorAll('#ensemble option').length > 0", timeout=20_000)
    page.select_option("#ensemble", server.demo.name)
    page.click("#start")
    page.wait_for_function("signalChart.data.datasets[0].data.length >= 40", timeout=60_000)
    points = page.evaluate("signalChart.data.datasets.map(d => d.data.filter(v => v !== null).length)")
    assert points[0] >= 40 and points[1] >= 40  # predicted and actual
    page.wait_for_function(
        "document.querySelector('#stats').innerText.includes('predictions (session)')", timeout=20_000
    )
    href = page.get_attribute("#download", "href")
    assert href.startswith("/api/v1/inference/stream/history/")
    shot(page, "twin-dashboard")
    # a target the twin is not followed on (models.twin.monitor.calibrate.twin_has_skill) is charted as its
    # reading against the normal level's band
    page.evaluate("monitor.signals[document.querySelector('#target').value].follows_twin = false")
    page.wait_for_function("document.querySelector('#band-note').innerText.includes('normal level')", timeout=20_000)
    residual, measured = page.evaluate(
        "[residualChart.data.datasets[0].data.at(-1), signalChart.data.datasets[1].data.at(-1)]"
    )
    assert residual == measured is not None
    page.click("#stop")


def test_twin_dashboard_shows_acknowledges_and_clears_an_alert(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(f"{server.http}/twin?token={ADMIN_TOKEN}")
    page.wait_for_function("document.querySelectorAll('#ensemble option').length > 0", timeout=20_000)
    page.select_option("#ensemble", server.demo.name)
    page.select_option("#source", "demo:stuck")  # Temperature_target_1 freezes over the middle third
    page.fill("#batch", "10")
    page.fill("#rate", "10")  # 100 samples/s: the fault shows for about 10 s
    page.click("#start")
    row = page.wait_for_selector("#open-alerts tbody tr[data-kind='stuck']", timeout=60_000)
    assert row.get_attribute("data-signal") == "Temperature_target_1"
    assert "Temperature_target_1" in row.inner_text() and page.inner_text("#alarm-count") == "1 open"
    assert page.is_hidden("#no-alerts")
    page.click("#open-alerts tbody tr[data-kind='stuck'] button.ack")
    page.wait_for_selector("#open-alerts tbody tr.acknowledged", timeout=20_000)
    session = page.evaluate("sessionId")
    stored = server.api.get("/api/v1/alerts", params={"session_id": session, "kind": "stuck"}).json()["alerts"]
    assert any(a["opened"] and a.get("acknowledged_at") for a in stored)
    band = page.evaluate("residualChart.data.datasets.map(d => d.data.filter(v => v !== null).length)")
    assert min(band) >= 100  # residuals and both edges of the alarm band
    shot(page, "twin-alarm-panel", docs_name="twin-dashboard")
    # the fault ends at sample 2000: the alert clears, the panel empties, the history keeps both events
    page.wait_for_selector("#open-alerts tbody tr", state="detached", timeout=60_000)
    assert page.inner_text("#alarm-count") == "0 open"
    history = page.inner_text("#alert-history")
    assert "has not moved" in history and "stuck on Temperature_target_1 cleared" in history
    page.click("#stop")


def test_enrollment_page_cuts_out_photos_trains_with_a_progress_bar_and_rolls_back(server, browser, tmp_path):
    from deployments.shared.detector_versions import CONFIGURED, DetectorVersions
    from tests.support.detector import blind_model, product_photos

    files = []
    for i, photo in enumerate(product_photos(5)):
        files.append(tmp_path / f"cup-{i}.jpg")
        files[-1].write_bytes(base64.b64decode(photo))
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{server.http}/enroll?token={ADMIN_TOKEN}")
    page.fill("#sku", "cup-browser")
    page.fill("#name", "Browser cup")
    page.fill("#price", "55")
    page.click("#product-form button[type=submit]")
    page.wait_for_function("!document.querySelector('#photos').disabled", timeout=10_000)
    page.set_input_files("#photos", [str(f) for f in files])
    page.wait_for_function("document.querySelectorAll('.cutout').length === 5", timeout=60_000)
    page.wait_for_function("[...document.querySelectorAll('.cutout img')].every(i => i.complete && i.naturalWidth > 0)",
                           timeout=20_000)
    canvas = page.locator(".cutout canvas").first
    box = canvas.bounding_box()
    before = page.evaluate("enrollment.photos[0].box")
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.9, steps=5)
    page.mouse.up()  # the admin's box: the photo is cut out again inside it
    width = page.evaluate("document.querySelector('.cutout canvas').width")
    page.wait_for_function(f"enrollment.photos[0].box[2] <= {0.7 * width + 2}", timeout=30_000)
    stored = server.api.get(f"/api/enrollments/{page.evaluate('enrollment.enrollment_id')}").json()["photos"][0]["box"]
    assert stored != before and stored[0] >= 0.3 * width - 2 and stored[2] <= 0.7 * width + 2
    shot(page, "enroll-cutouts")
    page.click("#train")
    page.wait_for_function("document.querySelector('#progress').value > 0", timeout=120_000)
    page.wait_for_function("document.querySelector('#train-status').innerText.startsWith('refused')", timeout=420_000)
    assert page.evaluate("document.querySelector('#progress').value") == 1
    assert "refused" in page.inner_text("#gate")
    shot(page, "enroll-refused")

    versions = DetectorVersions(server.mongo_uri)
    blind = versions.add(blind_model(), b"", {"classes": {}, "imgsz": 320}, "passed", "browser test")
    page.reload()
    row = page.locator("#versions tbody tr", has_text="browser test")
    row.locator("button").click()
    page.wait_for_function(f"document.querySelector('#versions').innerText.includes('{blind} (live)')", timeout=10_000)
    assert versions.live() == blind
    page.locator("#versions tbody tr", has_text="configured").locator("button").click()
    page.wait_for_function("document.querySelector('#versions').innerText.includes('0 (live)')", timeout=10_000)
    assert versions.live() == CONFIGURED


@pytest.fixture
def own_ensemble(server):
    """A copy of the demo ensemble whose calibration the operator test may change."""
    with copied_ensemble(server, "BrowserOperator") as name:
        yield name


def test_twin_operator_shelves_accepts_a_new_normal_rolls_back_and_sees_the_alarm_figures(server, browser,
                                                                                          own_ensemble):
    name = own_ensemble
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    page.goto(f"{server.http}/twin?token={ADMIN_TOKEN}")
    page.wait_for_function(f"[...document.querySelectorAll('#ensemble option')].some(o => o.value === '{name}')",
                           timeout=20_000)
    page.select_option("#ensemble", name)
    page.select_option("#source", "demo:drift")  # Temperature_target_2 reads 6 K high over samples 1000-2000
    page.fill("#batch", "10")
    page.fill("#rate", "8")  # 80 samples/s: the fault lasts 12.5 s
    page.click("#start")
    drift = "#open-alerts tbody tr[data-kind='drift'][data-signal='Temperature_target_2']"
    page.wait_for_selector(drift, timeout=60_000)
    page.wait_for_function("cursor >= 1250", timeout=30_000)  # 200 samples at the new level
    page.click("#accept")  # no reason typed: refused in the page, nothing sent
    assert "reason" in page.inner_text("#operator-status")
    page.fill("#reason", "new sensor mounting: reads 6 K higher")
    page.click("#accept")
    page.wait_for_selector(drift, state="detached", timeout=20_000)  # the standing alert clears
    assert "version 1 in force" in page.inner_text("#operator-status")
    page.wait_for_function("document.querySelector('#calibration-version').textContent === 'calibration v1'",
                           timeout=10_000)
    versions = server.api.get(f"/api/admin/ensembles/{name}/calibration").json()
    assert versions["in_force"] == 1 and versions["versions"][0]["reason"] == "new sensor mounting: reads 6 K higher"
    page.fill("#reason", "it was a fault after all")
    page.click("#rollback")
    page.wait_for_selector(drift, timeout=20_000)  # judged against the old normal again
    page.fill("#reason", "sensor under maintenance")
    page.click(f"{drift} button.shelve")
    page.wait_for_selector("#shelved-alerts tbody tr[data-kind='drift']", timeout=10_000)
    assert page.query_selector(drift) is None
    assert "sensor under maintenance" in page.inner_text("#shelved-alerts")
    page.wait_for_function("document.querySelector('#figures dd') !== null", timeout=10_000)
    figures = page.inner_text("#figures")
    assert "alerts per 10 min" in figures and "time with an alert standing" in figures
    page.click("#proposal")  # a proposal, or how many alert-free samples it lacks
    page.wait_for_function("document.querySelector('#operator-status').textContent.includes('alert-free')",
                           timeout=10_000)
    shot(page, "twin-operator")
    page.click("#stop")
    assert server.api.get(f"/api/admin/ensembles/{name}/calibration").json()["in_force"] == 0
