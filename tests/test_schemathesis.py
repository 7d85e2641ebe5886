"""Property-based API testing: schemathesis drives every operation of /openapi.json on a live server.

All of schemathesis's checks (``--checks all``: no 5xx, every status and content type documented, every body
matching its schema, invalid data refused, valid data accepted; settings in tests/schemathesis.toml), at least
2,000 generated requests, and every 4xx body is the documented ``{"error": {"type", "message"}}``.
schemathesis runs in a temporary folder, so its cache (``.schemathesis/``) never lands in the work tree.
The coverage phase is left out: on CPython 3.11.7 it trips an interpreter error inside hypothesis's lambda
description ("AST constructor recursion depth mismatch"), which is not a finding about the API.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Server

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_all_checks_over_2000_generated_requests(tmp_path):
    srv = Server({"JAKINIB_DATABASE_URL": f"sqlite:///{tmp_path / 'st.db'}"})
    try:
        st = Path(sys.executable).with_name("st")
        report = tmp_path / "har.json"
        proc = subprocess.run(
            [str(st), "--config-file", str(CONFIG), "run", srv.url + "/openapi.json", "--checks", "all",
             "--max-examples", "250", "--seed", "20261125", "--workers", "2", "--phases", "examples,fuzzing,stateful",
             "--report", "har", "--report-har-path", str(report)],
            capture_output=True, text=True, timeout=1800, cwd=tmp_path)
        tail = proc.stdout[-6000:]
        assert proc.returncode == 0, tail
        entries = json.loads(report.read_text())["log"]["entries"]
        assert len(entries) >= 2000, f"only {len(entries)} requests\n{tail}"
        assert not [e for e in entries if e["response"]["status"] >= 500]
        for e in entries:
            status, text = e["response"]["status"], e["response"]["content"].get("text") or ""
            if 400 <= status < 500 and status != 401:
                err = json.loads(text)["error"]
                assert isinstance(err["type"], str) and isinstance(err["message"], str), (e["request"]["url"], text)
    finally:
        srv.stop()
