"""Keeping TensorFlow's native start-up chatter off a user's screen.

TensorFlow 2.21 writes lines such as "All log messages before absl::InitializeLog() is called
are written to STDERR", "oneDNN custom operations are on" and, on machines without a GPU,
"Could not find cuda drivers" / "failed call to cuInit" straight to file descriptor 2 from C++,
before and regardless of TF_CPP_MIN_LOG_LEVEL. On a CPU machine they read like errors.

`filter_native_stderr()` puts a pipe in front of descriptor 2 for the rest of the process and
forwards every line except those known start-up notices, so real warnings, errors and
tracebacks still reach the terminal or log. GZ_SHOW_NATIVE_LOGS=1 turns the filter off.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

NOISE = re.compile(
    rb"All log messages before absl::InitializeLog"
    rb"|oneDNN custom operations are on"
    rb"|Could not find cuda drivers"
    rb"|failed call to cuInit"
    rb"|This TensorFlow binary is optimized to use available CPU instructions"
    rb"|To enable the following instructions: .* in other operations, rebuild TensorFlow"
    rb"|Unable to register cu(DNN|FFT|BLAS) factory"
    rb"|computation placer already registered"
    rb"|TF-TRT Warning: Could not find TensorRT"
    rb"|The default buffer size is \d+, which is overridden by the user specified"
)
_started = False


def filter_native_stderr() -> None:
    """Filter descriptor 2 of this process (and of the processes it starts) from now on."""
    global _started
    if _started or os.environ.get("GZ_SHOW_NATIVE_LOGS") == "1":
        return
    _started = True
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_forward, args=(read_end, original), daemon=True)
    thread.start()

    def restore() -> None:
        # Put the real stderr back, then let the thread drain what is left in the pipe.
        sys.stderr.flush()
        os.dup2(original, 2)
        thread.join(timeout=2)

    atexit.register(restore)


def _forward(read_end: int, destination: int) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = [line + b"\n" for line in lines if not NOISE.search(line)]
            if kept:
                os.write(destination, b"".join(kept))
        if pending and not NOISE.search(pending):
            os.write(destination, pending)
