"""Property-based API testing: schemathesis drives every operation of /openapi.json on a live server.

At least 2,000 generated requests in all; none may get a 5xx (check `not_a_server_error`).
The coverage phase is left out: on CPython 3.11.7 it trips an interpreter error inside hypothesis's lambda
description ("AST constructor recursion depth mismatch"), which is not a finding about the API.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Server


def test_no_5xx_over_2000_generated_requests(tmp_path):
    srv = Server({"JAKINIB_DATABASE_URL": f"sqlite:///{tmp_path / 'st.db'}"})
    try:
        st = Path(sys.executable).with_name("st")
        report = tmp_path / "har.json"
        proc = subprocess.run(
            [str(st), "run", srv.url + "/openapi.json", "--checks", "not_a_server_error", "--max-examples", "250",
             "--seed", "20261125", "--workers", "2", "--phases", "examples,fuzzing,stateful", "--report", "har", "--report-har-path", str(report)],
            capture_output=True, text=True, timeout=1200, cwd=tmp_path)  # schemathesis keeps its cache in ./.schemathesis
        tail = proc.stdout[-3000:]
        assert proc.returncode == 0, tail
        har = json.loads(report.read_text())
        statuses = [e["response"]["status"] for e in har["log"]["entries"]]
        assert len(statuses) >= 2000, f"only {len(statuses)} requests\n{tail}"
        assert not [s for s in statuses if s >= 500]
    finally:
        srv.stop()
