"""DepthEstimator: official keep-aspect preprocessing and end-to-end depth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from support.golden import TEST_IMAGE, load_fixture, rel_error
from livedepth.inference.estimator import DepthEstimator
from livedepth.model.midas import network_size, preprocess


@pytest.mark.parametrize(
    ("hw", "expected"),
    [((480, 640), (192, 256)), ((480, 854), (128, 256)), ((1080, 1920), (128, 256)), ((640, 480), (256, 192))],
)
def test_keep_aspect_sizes(hw, expected) -> None:
    assert network_size(*hw, size=256, keep_aspect=True) == expected


def test_square_is_default() -> None:
    assert network_size(480, 640) == (256, 256)


def test_preprocess_matches_official() -> None:
    frame = cv2.imread(str(TEST_IMAGE))
    x = preprocess(frame, network_size(*frame.shape[:2], keep_aspect=True))
    golden = load_fixture("pre_input_1x3x192x256.npy")
    assert x.dtype == np.float32 and x.shape == golden.shape
    assert np.max(np.abs(x - golden)) <= 1e-5


def test_end_to_end_keep_aspect_matches_official(weights_pt) -> None:
    frame = cv2.imread(str(TEST_IMAGE))
    depth = DepthEstimator(weights=weights_pt, keep_aspect=True).load().predict(frame)
    golden = load_fixture("post_depth_480x640.npy")
    assert depth.dtype == np.float32 and depth.shape == golden.shape
    assert rel_error(depth, golden) <= 1e-4


def test_square_default_returns_frame_resolution(weights_pt) -> None:
    frame = cv2.imread(str(TEST_IMAGE))[:, :600]
    est = DepthEstimator(weights=weights_pt).load()
    assert est.preprocess(frame).shape == (1, 3, 256, 256)
    depth = est.predict(frame)
    assert depth.shape == (480, 600) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and depth.std() > 0


def test_cuda_request_falls_back_to_cpu_without_cuda(weights_pt) -> None:
    import torch

    est = DepthEstimator(weights=weights_pt, device="cuda").load()
    assert est.loaded.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_threads_share_one_estimator_and_a_new_shape_never_blocks_a_ready_one(weights_pt) -> None:
    import threading

    est = DepthEstimator(weights=weights_pt, size=128, keep_aspect=True, threads=1, backend="torch").load()
    landscape = cv2.resize(cv2.imread(str(TEST_IMAGE)), (160, 120))
    portrait = np.ascontiguousarray(landscape.transpose(1, 0, 2))
    assert est.input_size(*landscape.shape[:2]) == (96, 128) and est.input_size(*portrait.shape[:2]) == (128, 96)
    expected = {"landscape": est.predict(landscape)}  # its shape is now ready

    building, release = threading.Event(), threading.Event()
    prepare = est.backend.prepare

    def slow_prepare(height: int, width: int) -> None:
        if (height, width) == est.input_size(*portrait.shape[:2]):
            building.set()
            release.wait(60)  # hold the build of the new shape, as a slow export would
        prepare(height, width)

    est.backend.prepare = slow_prepare
    results: dict[str, np.ndarray] = {}
    upload = threading.Thread(target=lambda: results.update(portrait=est.predict(portrait)))
    upload.start()
    assert building.wait(30)
    # while the portrait model is being built, forwards of the ready shape go on, from several threads
    workers = [threading.Thread(target=lambda i=i: results.update({f"live{i}": est.predict(landscape)}))
               for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert all(not w.is_alive() for w in workers) and upload.is_alive()
    release.set()
    upload.join(60)
    for i in range(3):
        np.testing.assert_array_equal(results[f"live{i}"], expected["landscape"])
    np.testing.assert_array_equal(results["portrait"], est.predict(portrait))
    assert results["portrait"].shape == portrait.shape[:2]
