"""Shared fixtures: the bundled knowledge base, the console script, the acceptance folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jakinib

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JAKINIB_SHARED", ROOT.parent / "shared"))
SCRIPT = Path(sys.executable).with_name("jakinib")


def pytest_addoption(parser):
    parser.addoption("--update-screenshots", action="store_true", default=False,
                     help="browser tests write their screenshots to docs/screenshots/ (the committed copies) "
                          "instead of a temporary folder")


@pytest.fixture(scope="session")
def screenshot_dir(request, tmp_path_factory) -> Path:
    """Where browser tests save screenshots: a temporary folder, or docs/screenshots/ with --update-screenshots."""
    if request.config.getoption("--update-screenshots"):
        path = ROOT / "docs" / "screenshots"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def kb():
    return jakinib.load()


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> CliResult:
    """Run the installed console script, as a user would (``env`` adds to the environment)."""
    assert SCRIPT.exists(), f"console script not installed at {SCRIPT}"
    proc = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, **env} if env else None)
    return CliResult(proc)


@pytest.fixture
def cli():
    return run_cli


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real `jakinib serve` process on a free loopback port."""

    def __init__(self, env: dict[str, str], args: list[str] | None = None, port: int | None = None,
                 cwd: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env}
        self.proc = subprocess.Popen([str(SCRIPT), "serve", "--port", str(self.port), *(args or [])], env=full_env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        for _ in range(600):  # bounded by attempts, not by a clock
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            subprocess.run(["sleep", "0.05"], check=False)
        raise RuntimeError("server did not become ready")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("db") / "feedback.db"
    srv = Server({"JAKINIB_DATABASE_URL": f"sqlite:///{db}"})
    srv.db_url = f"sqlite:///{db}"
    yield srv
    srv.stop()


class JsonStub:
    """A tiny JSON HTTP server on loopback (a JWKS endpoint, a FHIR server) for tests.

    ``respond(path) -> object`` answers every GET; requests are recorded as (path, Authorization header).
    """

    def __init__(self, respond, content_type: str = "application/json") -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Authorization", "")))
                body = json.dumps(respond(self.path)).encode()
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, for the page tests (test_browser.py, test_pages_layout.py)."""
    from playwright.sync_api import sync_playwright

    from test_browser import ARGS, CHROMIUM

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
