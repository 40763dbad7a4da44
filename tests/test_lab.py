"""``nox -s lab``: a Jupyter server on lessons/ whose kernel runs a lesson's first cell.

Starts the same server the session starts (``jupyter lab`` in this environment), asks its
REST API for a kernel, and runs the first code cell of lesson 01 over the kernel's
websocket, as JupyterLab does when a reader presses shift-enter. Full tier: the server and
the model take several seconds.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_code_cell(lesson: Path) -> str:
    import jupytext

    notebook = jupytext.read(lesson)
    return next(cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_lab_server_runs_a_lessons_first_cell(tmp_path):
    pytest.importorskip("jupyterlab", reason="JupyterLab comes with the lab extra")
    websocket = pytest.importorskip("websocket", reason="websocket-client comes with Jupyter")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--notebook-dir={ROOT / 'lessons'}",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(urllib.request.Request(
                        f"{base}/api/contents/01-filters-and-feature-maps.py", headers=auth)) as r:
                    model = json.load(r)
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            pytest.fail(f"jupyter lab did not answer: {server.stderr.read()[-2000:]}")
        # jupytext opens the lesson's .py as a notebook
        assert model["type"] == "notebook", model["type"]
        request = urllib.request.Request(f"{base}/api/kernels", data=b"{}", headers=auth,
                                         method="POST")
        with urllib.request.urlopen(request) as r:
            kernel = json.load(r)["id"]
        socket_ = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels?token={token}", timeout=300)
        code = first_code_cell(ROOT / "lessons" / "01-filters-and-feature-maps.py")
        code += "\nprint('convlens from', convlens.__file__)"
        msg_id = uuid.uuid4().hex
        socket_.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False}}))
        printed, reply = [], None
        while reply is None:
            message = json.loads(socket_.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            elif message["msg_type"] == "execute_reply":
                reply = message["content"]
        socket_.close()
        assert reply["status"] == "ok", reply
        output = "".join(printed)
        assert "model: efficientnet_lite0" in output and "convlens from" in output, output
    finally:
        server.terminate()
        server.wait(timeout=30)
