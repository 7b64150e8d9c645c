"""The publisher and subscriber examples of docs/protocol.md, run as written against a real
server (they import only pyzmq and msgpack)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _example(name: str) -> str:
    blocks = re.findall(r"```python\n(# example: (\S+).*?)```", DOC.read_text(), flags=re.S)
    found = {fname: code for code, fname in blocks}
    assert name in found, f"no '# example: {name}' block in {DOC}"
    return found[name]


def test_examples_only_need_pyzmq_and_msgpack():
    for name in ("publisher.py", "subscriber.py"):
        imports = set(re.findall(r"^(?:import|from) (\w+)", _example(name), flags=re.M))
        assert imports <= {"math", "struct", "sys", "time", "msgpack", "zmq"}, imports


def test_doc_examples_against_a_real_server(run_server, tmp_path):
    pub_py, sub_py = tmp_path / "publisher.py", tmp_path / "subscriber.py"
    pub_py.write_text(_example("publisher.py"))
    sub_py.write_text(_example("subscriber.py"))
    with run_server() as (srv, col):
        sub = subprocess.Popen(
            [sys.executable, str(sub_py), srv.endpoints["publish"], "12"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # the subscriber is live once it prints a status line (the server sends one
            # every 0.1 s here): only then start publishing, so it misses no cycle
            first = []
            reader = threading.Thread(target=lambda: first.append(sub.stdout.readline()))
            reader.start()
            reader.join(60)
            assert first and first[0].startswith("status:"), first
            pub = subprocess.run(
                [sys.executable, str(pub_py), srv.endpoints["listen"], "10"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert pub.returncode == 0, pub.stderr
            out, err = sub.communicate(timeout=60)
        finally:
            if sub.poll() is None:
                sub.kill()
        assert sub.returncode == 0, err
        assert col.wait_ended("subject01", 30)
    lines = [ln for ln in out.splitlines() if " cycle " in ln]
    assert len(lines) == 12 and all("subject01" in ln and "latency" in ln for ln in lines)
    cycles = col.of_type("cycle", "subject01")
    assert len(cycles) == 17  # 10 right ICs and 9 left ICs within the 10 s of frames
    assert all(c["quality"]["ic_source"] == "external" for c in cycles)
    assert not col.of_type("reject", "subject01")
