"""Running the chapters interactively: ``make lab`` starts JupyterLab on ``book/`` with this
environment's kernel, and a chapter runs there.

The test starts JupyterLab as ``make lab`` does (``python -m jupyterlab`` from this environment,
root ``book/``, ``JUPYTER_PATH`` on ``.venv``'s kernels, ``MINARI_DATASETS_PATH`` set), on a free
local port with a token and its own config and runtime folders. Through the REST API it checks
the server and the JupyterLab page, opens a session for ``CHAPTER`` (which starts its kernel),
reads the notebook, and executes its first code cells, up to and including the imports cell,
over the kernel's websocket channel, as the JupyterLab front end does: no error, and the imports
cell prints that budgets are the full ones (a reader's server has no ``IQL_QUICK``). A last cell
checks the kernel itself: this environment's Python, the repository's package and datasets, the
notebook's folder as working directory, and live progress bars (``tqdm.auto`` displays an
ipywidgets bar). Then the session and the server are shut down.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
CHAPTER = "01_offline_rl.ipynb"
START_TIMEOUT_S = 60
CELL_TIMEOUT_S = 120
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

KERNEL_PROBE = """\
import os, sys, json
import iql_tutorial
import tqdm.auto, tqdm.notebook
from tqdm.auto import tqdm as auto_tqdm

for _ in auto_tqdm(range(3), desc="live"):
    pass
print(json.dumps({
    "executable": sys.executable,
    "package": iql_tutorial.__file__,
    "minari": os.environ.get("MINARI_DATASETS_PATH"),
    "cwd": os.getcwd(),
    "widget_bars": issubclass(tqdm.auto.tqdm, tqdm.notebook.tqdm_notebook),
}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """JupyterLab in a subprocess (its own process group), talked to over HTTP with its token."""

    def __init__(self, tmp: Path):
        self.port = _free_port()
        self.token = uuid.uuid4().hex
        self.base = f"http://127.0.0.1:{self.port}"
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        env = {k: v for k, v in os.environ.items() if k not in ("IQL_QUICK", "IQL_PROGRESS", "PYTHONSTARTUP")}
        env.update(
            JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"),
            JUPYTER_CONFIG_DIR=str(tmp / "config"),
            JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
            IPYTHONDIR=str(tmp / "ipython"),
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        env.setdefault("MINARI_DATASETS_PATH", str(REPO / "data"))
        self.log_path = tmp / "jupyterlab.log"
        self.log = open(self.log_path, "wb")  # closed in stop()
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={BOOK}",
            "--MappingKernelManager.default_kernel_name=python3",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
            cmd.append("--allow-root")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with self.opener.open(req, timeout=timeout) as response:
            raw = response.read()
            kind = response.headers.get("Content-Type", "")
        return json.loads(raw) if raw and "json" in kind else raw.decode(errors="replace")

    def wait_ready(self) -> dict:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                return self.request("GET", "/api/status", timeout=5)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        pytest.fail(f"JupyterLab did not answer on port {self.port} within {START_TIMEOUT_S} s:\n{self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request("POST", "/api/shutdown", timeout=10)
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        try:  # a kernel left behind by this server only: its own process group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()


class KernelChannel:
    """The kernel's websocket channel of the server, in the JSON message format."""

    def __init__(self, ws, session: str):
        self.ws = ws
        self.session = session

    def execute(self, code: str) -> dict:
        """Run ``code`` like a notebook cell; returns the reply, stdout, stderr, errors and the
        mime types displayed."""
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": self.session,
                        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        result = {"reply": None, "stdout": "", "stderr": "", "errors": [], "displayed": [], "idle": False}
        deadline = time.monotonic() + CELL_TIMEOUT_S
        while result["reply"] is None or not result["idle"]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no reply to a cell within {CELL_TIMEOUT_S} s:\n{code[:300]}\n{result}")
            msg = json.loads(self.ws.recv(timeout=remaining))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if msg["channel"] == "shell" and kind == "execute_reply":
                result["reply"] = content
            elif kind == "stream":
                result[content["name"]] += content["text"]
            elif kind == "error":
                result["errors"].append(f"{content['ename']}: {content['evalue']}")
            elif kind in ("display_data", "execute_result"):
                result["displayed"].extend(content["data"])
            elif kind == "status" and content["execution_state"] == "idle":
                result["idle"] = True
        return result


def _first_cells(nb: dict) -> list[str]:
    """The notebook's code cells up to and including the imports cell (the first that imports
    the package)."""
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        cells.append(source)
        if "from iql_tutorial" in source or "import iql_tutorial" in source:
            return cells
    pytest.fail(f"{CHAPTER} has no code cell that imports iql_tutorial")


def test_jupyterlab_runs_a_chapter(tmp_path):
    from websockets.sync.client import connect

    started = time.monotonic()
    server = Server(tmp_path)
    try:
        status = server.wait_ready()
        assert "started" in status, status
        lab = server.request("GET", "/lab")
        assert "JupyterLab" in lab, lab[:500]
        specs = server.request("GET", "/api/kernelspecs")
        assert "python3" in specs["kernelspecs"], specs

        model = server.request("GET", f"/api/contents/{CHAPTER}?content=1&type=notebook")
        cells = _first_cells(model["content"])
        session = server.request(
            "POST",
            "/api/sessions",
            {"path": CHAPTER, "name": CHAPTER, "type": "notebook", "kernel": {"name": "python3"}},
        )
        kernel = session["kernel"]
        assert kernel["name"] == "python3", session
        client_session = uuid.uuid4().hex
        url = (
            f"ws://127.0.0.1:{server.port}/api/kernels/{kernel['id']}/channels"
            f"?session_id={client_session}&token={server.token}"
        )
        with connect(url, max_size=None, open_timeout=30, proxy=None) as ws:
            channel = KernelChannel(ws, client_session)
            for number, code in enumerate(cells, 1):
                out = channel.execute(code)
                assert out["reply"]["status"] == "ok" and not out["errors"], (
                    f"code cell {number} of {CHAPTER} failed in JupyterLab: {out['errors']}\n{out['stderr'][-2000:]}"
                )
                if "full budgets" in code:  # the imports cell says which budgets it runs
                    assert out["stdout"].strip().splitlines()[:1] == ["full budgets"], out
            probe = channel.execute(KERNEL_PROBE)
        assert probe["reply"]["status"] == "ok" and not probe["errors"], probe
        facts = json.loads(probe["stdout"].strip().splitlines()[-1])
        assert Path(facts["executable"]).resolve() == Path(sys.executable).resolve(), facts
        assert Path(facts["package"]).resolve().is_relative_to(REPO), facts
        minari = os.environ.get("MINARI_DATASETS_PATH", str(REPO / "data"))
        assert Path(facts["minari"]).resolve() == Path(minari).resolve(), facts
        assert Path(facts["cwd"]).resolve() == BOOK.resolve(), facts
        assert facts["widget_bars"], "tqdm.auto gives text bars in JupyterLab: is ipywidgets installed?"
        assert WIDGET_VIEW in probe["displayed"], f"no live progress widget was displayed: {probe}"

        server.request("DELETE", f"/api/sessions/{session['id']}")
        assert server.request("GET", "/api/sessions") == []
    finally:
        server.stop()
    assert server.proc.returncode is not None
    elapsed = time.monotonic() - started
    print(f"JupyterLab started, ran {len(cells)} cells of {CHAPTER} and stopped in {elapsed:.0f} s")
