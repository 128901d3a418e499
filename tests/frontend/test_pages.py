"""The kiosk and the twin dashboard in a real headless Chromium against the real server.

Chromium's fake camera plays a video made from rendered product frames and a real face photo.
Screenshots land in tests/results/screenshots/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright import sync_api as playwright_api
from models.store_render import catalogue_looks, render_scene
from tests.conftest import ADMIN_TOKEN
from tests.frontend.fake_camera import write_y4m
from tests.serve_app.store_frames import group_face

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "results" / "screenshots"


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


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


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
    shot(page, "kiosk-logged-in")
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
    page.wait_for_function("document.querySelector('#stats').innerText.includes('predictions (session)')", timeout=20_000)
    href = page.get_attribute("#download", "href")
    assert href.startswith("/api/v1/inference/stream/history/")
    shot(page, "twin-dashboard")
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
    shot(page, "twin-alarm-panel")
    # the fault ends at sample 2000: the alert clears, the panel empties, the history keeps both events
    page.wait_for_selector("#open-alerts tbody tr", state="detached", timeout=60_000)
    assert page.inner_text("#alarm-count") == "0 open"
    history = page.inner_text("#alert-history")
    assert "has not moved" in history and "stuck on Temperature_target_1 cleared" in history
    page.click("#stop")
