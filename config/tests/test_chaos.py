"""The chaos run, small and with a fixed seed: the whole system (sandbox, gunicorn, Celery worker and beat) under
random gateway faults and process kills; every payment and refund must end final and agree with the gateway."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_small_chaos_run_leaves_nothing_behind():
    dbname = f"locker_bench_chaos_t{os.getpid()}"
    done = subprocess.run(
        [sys.executable, "bench/chaos.py", "--n", "21", "--seed", "7", "--quiesce", "150", "--dbname", dbname],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    output = done.stdout + done.stderr
    result = re.search(r"^RESULT (.*)$", done.stdout, re.MULTILINE)
    assert result, output[-4000:]
    values = dict(pair.split("=") for pair in result.group(1).split())
    assert int(values["payments"]) == 21 and int(values["refunds"]) > 0, output[-4000:]
    assert int(values["faults"]) >= 3, output[-4000:]  # at least the three kills
    assert (values["stuck"], values["mismatches"], values["ledger_breaks"]) == ("0", "0", "0"), output[-4000:]
    assert done.returncode == 0, output[-4000:]
