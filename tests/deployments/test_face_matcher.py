"""The FaceMatcher deployment's class, run in-process: face work priority, kiosk search size, face cache."""

from __future__ import annotations

import os

import numpy as np

from bench.ingress_costs import shopper_in_full_hd_frame
from deployments.face_matcher import FACE_WORK_NICENESS, FaceMatcher
from deployments.shared.mongo import ShopperRecords
from models.store.render import jpeg_bytes
from tests.support.store_frames import astronaut_photo


def test_face_work_runs_below_the_priority_of_product_detection():
    matcher = FaceMatcher.func_or_class("mongodb://127.0.0.1:9")  # pymongo connects lazily: no database needed
    own = os.getpriority(os.PRIO_PROCESS, 0)  # Linux: the calling thread's niceness
    assert matcher.worker.submit(os.getpriority, os.PRIO_PROCESS, 0).result() == min(19, own + FACE_WORK_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, 0) == own  # only the face worker thread, not the replica


def test_kiosk_frames_are_searched_at_the_configured_size():
    matcher = FaceMatcher.func_or_class("mongodb://127.0.0.1:9")
    matcher.gallery.add("astronaut", matcher._encode([astronaut_photo()]))
    matcher.users = {"astronaut": {"id": "astronaut", "name": "Eileen", "phone": "555"}}
    matcher.refresh_s = float("inf")  # the gallery above stands for the database's users
    frame = jpeg_bytes(shopper_in_full_hd_frame())
    assert matcher._identify(frame)["id"] == "astronaut"  # default 640 px: the ~180 px face is found
    matcher.reconfigure({"kiosk_search_max_side": 320})
    assert matcher._identify(frame) is None  # at 320 px the face is too small for HOG


def test_face_cache_follows_registrations_not_the_shopper_count(server):
    shoppers = ShopperRecords(server.mongo_uri, name="face-cache-test")
    matcher = FaceMatcher.func_or_class(server.mongo_uri)
    matcher.shoppers, matcher.refresh_s = shoppers, 0.0  # re-check the database on every call
    first, second = np.full(128, 0.1).tolist(), np.full(128, -0.1).tolist()
    deleted = shoppers.create("First", "0911111111", [first])
    assert matcher._find([first])["id"] == deleted["user_id"]
    shoppers.delete(deleted["user_id"])
    kept = shoppers.create("Second", "0922222222", [second])  # same number of shoppers as before
    assert matcher._find([first]) is None  # the deleted face no longer logs in
    assert matcher._find([second])["id"] == kept["user_id"]
