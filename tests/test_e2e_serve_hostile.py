"""A real `mlflow models serve` under hostile requests (issue 28): one server, many checks.

gzip FITS bombs, named pipes, a symbolic link swapped while it is read, NUL bytes, probes for
which files exist, unknown parameters, deeply nested and huge invalid JSON, and requests that
outlive the server's timeout. Each was a hang, a leak, a 500 or an echo before.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from gz_experiments.prediction.inputs import REFUSED_PATH

from .conftest import shared_data
from .fits_files import gzip_bomb, huge_header, simulated_flux, write_layout
from .test_e2e_serve import frame_body, no_trace, post, post_raw, rss_of_tree, served
from .tiny_models import REAL_IMAGES, log_training_run, save_tiny_model, tiny_spec

TIMEOUT = 6  # the server's request timeout (s): short, so the overrun check is quick


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def folders(tmp_path):
    """allowed/: a good PNG, a text file named .png, a named pipe, a link; outside: a PNG."""
    png = sorted((shared_data(REAL_IMAGES) / "images").glob("*.png"))[0]
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "g.png").write_bytes(png.read_bytes())
    (allowed / "bad.png").write_text("not an image")
    os.mkfifo(allowed / "pipe.png")
    (tmp_path / "secret.png").write_bytes(png.read_bytes())
    return allowed


def swap_link(link: Path, targets: tuple[Path, Path], stop: threading.Event) -> None:
    """Point `link` at each target in turn, atomically, until `stop` (the check-then-open race)."""
    tmp = link.with_name("link.tmp")
    while not stop.is_set():
        for target in targets:
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            os.replace(tmp, link)


@pytest.mark.e2e
def test_served_model_survives_bombs_pipes_races_probes_and_overruns(tracking, tmp_path, folders):
    from gz_experiments.images.fits import PRESETS

    spec = dataclasses.replace(tiny_spec(), fits=PRESETS["simulator"])
    run_id = log_training_run(save_tiny_model(tmp_path / "m.keras", spec), spec, 1.0)
    allowed, good = folders, str(folders / "g.png")
    cube = write_layout(tmp_path / "c", simulated_flux(1)[0], "cube").read_bytes()
    bomb, declared = b64(gzip_bomb(cube, 512 * 2**20)), b64(gzip_bomb(huge_header(), 0))
    image = b64((allowed / "g.png").read_bytes())
    env = {"GZ_SERVE_ALLOWED_DIRS": str(allowed), "GZ_SERVE_CONCURRENCY": "1",
           "GZ_SERVE_MAX_ROWS": "1500", "GZ_SERVE_MAX_REQUEST_BYTES": "3000000",
           "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": str(TIMEOUT)}  # fmt: skip
    with served(f"runs:/{run_id}/model", tracking, **env) as (port, server):
        assert post(port, frame_body(["file_loc"], [[good]]))[0] == 200

        # F2: two requests naming a pipe (one turn only) must not freeze the next good request
        with ThreadPoolExecutor(2) as pool:
            pipes = list(pool.map(lambda _: post(port, frame_body(["file_loc"], [[str(allowed / "pipe.png")]]), 15), range(2)))  # fmt: skip
        after_pipes = post(port, frame_body(["file_loc"], [[good]]), 15)

        # F13, F7: missing inside, outside, a NUL byte, a pipe: one answer, no existence oracle
        probes = [str(allowed / "absent.png"), str(allowed / ".." / "secret.png"),
                  str(allowed / "g\x00.png"), str(allowed / "pipe.png")]  # fmt: skip
        answers = {p: post(port, frame_body(["file_loc"], [[p]]), 15) for p in probes}

        # F3: a link inside the folder swapped between a non-image inside and a PNG outside
        link, stop = allowed / "link.png", threading.Event()
        swapper = threading.Thread(target=swap_link, args=(link, (allowed / "bad.png", tmp_path / "secret.png"), stop))  # fmt: skip
        link.symlink_to(allowed / "bad.png")
        swapper.start()
        try:
            raced = [post(port, frame_body(["file_loc", "id_str"], [[str(link), f"{r}-{i}"] for i in range(100)], on_unreadable="skip"), 30) for r in range(6)]  # fmt: skip
        finally:
            stop.set()
            swapper.join()

        # F14, F8: unknown parameter, deep JSON, invalid JSON, a body over the limit
        unknown = post(port, frame_body(["image"], [[image]], evil=1), 15)
        deep = post_raw(port, b'{"dataframe_split": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        invalid = post_raw(port, b'{"dataframe_split": "' + b"A" * 2_000_000)
        too_big = post_raw(port, b'{"dataframe_split": "' + b"A" * 6_000_000 + b'"}')

        # F1: a gzipped FITS cube followed by 512 MB of zeros; a header declaring 9.6 GB
        before, start = rss_of_tree(server), time.monotonic()
        bombed = post(port, frame_body(["image", "id_str"], [[bomb, "b"]]), 30)
        bomb_seconds, grown = time.monotonic() - start, rss_of_tree(server) - before
        huge = post(port, frame_body(["image"], [[declared]]), 30)

        # F4: two requests far beyond the timeout; the work stops, the next request is served
        # (sampling settings already traced: one batch is one image, a few milliseconds)
        heavy = frame_body(["file_loc", "id_str"], [[good, str(i)] for i in range(1500)],
                           batch_size=1)  # fmt: skip
        with ThreadPoolExecutor(2) as pool:
            overruns = list(pool.map(lambda _: post_raw(port, json.dumps(heavy).encode(), 60), range(2)))  # fmt: skip
        start = time.monotonic()
        after_overruns = post(port, frame_body(["image"], [[image]]), 60)
        wait_after_overrun = time.monotonic() - start

    for status, answer in pipes:
        assert status == 400 and REFUSED_PATH in answer["message"], answer
    assert after_pipes[0] == 200, after_pipes
    messages = set()
    for path, (status, answer) in answers.items():
        assert status == 400, (path, answer)
        no_trace(answer)
        messages.add(answer["message"].replace(path, "<path>"))
    assert len(messages) == 1 and REFUSED_PATH in messages.pop()
    rows = pd.concat([pd.DataFrame(answer["predictions"]) for _, answer in raced])
    assert all(status == 200 for status, _ in raced) and len(rows) == 600
    assert (rows["skipped_reason"] != "").all(), rows["skipped_reason"].value_counts()
    assert set(rows["skipped_reason"]) <= {
        REFUSED_PATH,
        "not a PNG or JPEG image (cannot identify the format)",
    }
    assert unknown[0] == 400 and "unknown parameter(s) ['evil']" in unknown[1]["message"]
    assert deep[0] == 400 and b"nested too deeply" in deep[1] and len(deep[1]) < 500, deep
    assert invalid[0] == 400 and b"not valid JSON" in invalid[1] and len(invalid[1]) < 500
    assert (
        too_big[0] == 400 and b"GZ_SERVE_MAX_REQUEST_BYTES" in too_big[1] and len(too_big[1]) < 500
    )
    assert bombed[0] == 200 and bombed[1]["predictions"][0]["id_str"] == "b", bombed
    assert bomb_seconds < 5 and grown < 200e6, (bomb_seconds, grown)
    assert huge[0] == 400 and "too large" in huge[1]["message"], huge
    assert [status for status, _ in overruns] == [504, 504]
    assert after_overruns[0] == 200 and wait_after_overrun < TIMEOUT, wait_after_overrun
