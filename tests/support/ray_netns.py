"""Run a Ray driver against a real multi-node Ray cluster sealed in a private network namespace.

Every Ray process (head, extra nodes, driver, workers) runs inside one namespace made with
``unshare --net`` (plus ``--pid --fork --mount-proc --kill-child`` so that killing ``unshare``
takes the whole cluster down with it). Only ``lo`` exists there, so no Ray traffic can leave
loopback. Each node is a separate ``ray start --block`` process tree with its own raylet and
temp dir; all share one random token (``RAY_AUTH_MODE=token`` + ``RAY_AUTH_TOKEN``). Needs root and
``unshare``/``setpriv`` (util-linux), ``ip``/``ss`` (iproute2); see :func:`missing_tools`.

Teardown: SIGTERM to every ``ray start --block`` (it drains, ~2 s), then SIGKILL to anything left in
the pid namespace. If the caller dies or is interrupted, ``unshare`` gets SIGKILL (``setpriv
--pdeathsig``) and the kernel kills the whole namespace. Logs live in ``/tmp/rnsXXXX`` (removed
unless ``keep_temp``); nothing is written to ``/tmp/ray`` or ``~/.ray``. Node death is detected
in ~1.5 s (``FAST_HEALTH_CHECK_ENV``) instead of Ray's default ~15 s.

The driver gets ``RAY_ADDRESS`` (so a bare ``ray.init()`` connects; not with ``nodes=0``, where no
cluster runs and a Ray the driver starts keeps its files in the temp dir too), the token, and:

* ``RAY_NETNS_NODES``: how many nodes were started;
* ``RAY_NETNS_KILL_FILE``: create this file (content: node index, or empty for ``kill_node``)
  to have the supervisor SIGKILL that node's whole process tree (raylet, agents, workers) at
  once; printing a line containing ``kill_marker`` on stdout does the same (the head, index 0,
  only when ``kill_node=0`` asks for it);
* ``RAY_NETNS_KILLED_FILE``: appears once the supervisor has killed the node.

A node can run another interpreter (``node_python``; :func:`python_without_livedepth` makes one
without livedepth), its own ``--node-name`` and environment; the driver can get its own
environment (a wrong token) and working directory.

Printing ``interrupt_marker`` makes the supervisor send SIGINT to the driver (a Ctrl+C), and
``snapshot_marker`` records an ``ss -tuanp`` snapshot. Drivers must flush stdout
(``PYTHONUNBUFFERED=1`` is set). The supervisor also samples ``/proc/net/{tcp,udp,raw}[6]``
every 0.2 s and reports any socket whose address is not loopback (or a wildcard bind).

Usage from a test::

    res = run_ray_driver("tests/support/ray_cli_driver.py", ["convert", "in/", "out/", "--ray"], nodes=2,
                         python="/path/to/venv-with-ray/bin/python")
    assert res.returncode == 0 and not res.report["socket_violations"]

Or by hand: ``python tests/support/ray_netns.py [--nodes N] [--cpus C] DRIVER [ARGS...]``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GCS_PORT = 6379
KILL_MARKER = "RAY_NETNS_KILL_NODE"
SNAPSHOT_MARKER = "RAY_NETNS_SNAPSHOT"
# Faster node-death detection than Ray's defaults (3 s period x 5 failures).
FAST_HEALTH_CHECK_ENV = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}


@dataclass
class RayRunResult:
    """What :func:`run_ray_driver` returns; ``report`` is the supervisor's JSON report."""

    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] = field(default_factory=dict)
    supervisor_log: str = ""
    work_dir: str | None = None  # kept only with keep_temp=True


def missing_tools() -> list[str]:
    """Names of the tools this helper needs but cannot find (empty means ready; needs root)."""
    missing = [t for t in ("unshare", "setpriv", "ip", "ss") if shutil.which(t) is None]
    if os.geteuid() != 0:
        missing.append("root (for unshare --net)")
    return missing


def ray_python_ok(python: str) -> bool:
    """True if ``python`` can import ray and has the ``ray`` CLI next to it."""
    if not _ray_cli(python):
        return False
    return subprocess.run([python, "-c", "import ray"], check=False, capture_output=True).returncode == 0


def python_without_livedepth(dest: Path) -> str:
    """An interpreter with this environment's packages (ray, torch, ...) but without livedepth, for
    a node where livedepth is not installed: a venv whose only link to them is a ``.pth`` line
    naming this environment's site-packages, which therefore is not a site dir, so its own
    ``.pth`` files (livedepth's editable install) never run. Checked before it is returned."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    python = str(dest / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "outer-site-packages.pth").write_text("".join(f"{p}\n" for p in ours))
    check = subprocess.run([python, "-c", "import ray\ntry:\n import livedepth\nexcept ImportError: pass\n"
                            "else: raise SystemExit(livedepth.__file__)"], cwd=dest, capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"{python} should have ray and not livedepth: {check.stderr or check.stdout}")
    return python


def run_ray_driver(
    driver: str | os.PathLike[str],
    args: Sequence[str] = (),
    *,
    nodes: int = 2,
    cpus_per_node: int = 1,
    python: str | None = None,
    node_python: dict[int, str] | None = None,
    node_names: dict[int, str] | None = None,
    node_env: dict[int, dict[str, str]] | None = None,
    object_store_mb: int = 128,
    timeout: float = 300.0,
    kill_marker: str | None = KILL_MARKER,
    kill_node: int = -1,
    interrupt_marker: str | None = None,
    snapshot_marker: str | None = SNAPSHOT_MARKER,
    fast_failure_detection: bool = True,
    extra_env: dict[str, str] | None = None,
    driver_env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    keep_temp: bool = False,
) -> RayRunResult:
    """Start an ``nodes``-node Ray cluster in a private netns, run ``python driver *args``, tear down.

    ``python`` (default: this interpreter) must have ray installed; the ``ray`` CLI next to it
    starts the nodes. ``node_python`` gives some nodes another interpreter (one that has ray,
    run as ``python -m ray.scripts.scripts``), ``node_names`` their ``--node-name`` and
    ``node_env`` more environment variables (the workers they start inherit them). ``nodes=0``
    starts no cluster (and sets no ``RAY_ADDRESS``). ``kill_node`` is the node index SIGKILLed
    on ``kill_marker``; 0 (the head) only when asked for explicitly. ``extra_env`` goes to the
    nodes and the driver, ``driver_env`` to the driver only; the driver runs in ``cwd``. The
    driver is SIGINTed, then killed, after ``timeout`` seconds. Blocks until every process of
    the namespace is gone.
    """
    python = python or sys.executable
    if nodes < 0:
        raise ValueError("nodes must be >= 0")
    ray_cli = _ray_cli(python)
    node_cli = {i: [ray_cli] for i in range(nodes)}
    for i, other in (node_python or {}).items():
        node_cli[i] = [other, "-m", "ray.scripts.scripts"]
    work = Path(tempfile.mkdtemp(prefix="rns", dir="/tmp"))  # short: unix socket paths <= 107 chars
    env = dict(FAST_HEALTH_CHECK_ENV) if fast_failure_detection else {}
    env.update(extra_env or {})
    cfg = {
        "driver": [python, os.fspath(driver), *args],
        "node_cli": [node_cli[i] for i in range(nodes)],
        "node_names": {str(i): name for i, name in (node_names or {}).items()},
        "node_env": {str(i): dict(e) for i, e in (node_env or {}).items()},
        "nodes": nodes,
        "cpus_per_node": cpus_per_node,
        "object_store_bytes": object_store_mb * 1024 * 1024,
        "timeout": timeout,
        "kill_marker": kill_marker,
        "kill_node": kill_node,
        "interrupt_marker": interrupt_marker,
        "snapshot_marker": snapshot_marker,
        "env": env,
        "driver_env": dict(driver_env or {}),
        "cwd": os.fspath(cwd) if cwd is not None else os.getcwd(),
        "work": str(work),
    }
    (work / "config.json").write_text(json.dumps(cfg))
    # If this process dies, unshare gets SIGKILL (setpriv's pdeathsig) and --kill-child then
    # SIGKILLs the namespace's init, which makes the kernel kill every process in the namespace.
    cmd = ["setpriv", "--pdeathsig", "KILL",
           "unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child",
           sys.executable, os.path.abspath(__file__), "--supervise", str(work / "config.json")]
    def read(name: str) -> str:
        p = work / name
        return p.read_text(errors="replace") if p.exists() else ""

    try:
        with open(work / "supervisor.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.wait(timeout=timeout + 90)
            except subprocess.TimeoutExpired:
                pass
            finally:  # timeout, or KeyboardInterrupt in the caller
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        report = json.loads(read("report.json") or "{}")
        return RayRunResult(
            returncode=int(report.get("driver_returncode", -1000 + (proc.returncode or 0))),
            stdout=read("driver.out"), stderr=read("driver.err"), report=report,
            supervisor_log=read("supervisor.log"), work_dir=str(work) if keep_temp else None)
    finally:
        if not keep_temp:
            shutil.rmtree(work, ignore_errors=True)


def _ray_cli(python: str) -> str | None:
    cand = Path(python).parent / "ray"
    return str(cand) if cand.exists() else shutil.which("ray")


# ---------------------------------------------------------------- inside the namespace


def _loopback_or_wildcard(addr: str) -> tuple[bool, bool]:
    ip = ipaddress.ip_address(addr)
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_loopback, ip.is_unspecified


def _parse_hex_addr(hexaddr: str) -> tuple[str, int]:
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    # /proc/net stores each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    fam = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(fam, raw), int(port, 16)


def proc_net_sockets() -> list[dict[str, Any]]:
    """All inet sockets of this network namespace, from /proc/net/{tcp,udp,raw}[6]."""
    out = []
    for kind in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        try:
            lines = Path(f"/proc/net/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            (lh, lp), (rh, rp) = _parse_hex_addr(cols[1]), _parse_hex_addr(cols[2])
            out.append({"kind": kind, "local": f"{lh}:{lp}", "remote": f"{rh}:{rp}",
                        "lhost": lh, "rhost": rh, "state": cols[3]})
    return out


def _interfaces() -> list[str]:
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


class _Supervisor:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.work = Path(cfg["work"])
        self.report: dict[str, Any] = {"nodes": [], "killed": [], "socket_violations": [],
                                       "wildcard_binds": [], "socket_samples": 0, "max_sockets": 0,
                                       "ss_snapshots": []}
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.driver: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.t0 = time.monotonic()

    def log(self, msg: str) -> None:
        print(f"[ray_netns {time.monotonic():.2f}] {msg}", flush=True)

    # -- environment
    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for k in [k for k in env if k.startswith("RAY_")]:
            del env[k]
        env.update(self.cfg["env"])
        env.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": self.token, "PYTHONUNBUFFERED": "1",
                    "RAY_TMPDIR": str(self.work)})  # a local instance's files too
        return env

    # -- nodes
    def start_node(self, i: int) -> subprocess.Popen[bytes]:
        c = self.cfg
        cmd = [*c["node_cli"][i], "start", "--block", f"--num-cpus={c['cpus_per_node']}",
               "--node-ip-address=127.0.0.1", f"--temp-dir={self.work}/n{i}",
               f"--object-store-memory={c['object_store_bytes']}", "--disable-usage-stats"]
        if i == 0:
            cmd += ["--head", f"--port={GCS_PORT}", "--include-dashboard=false"]
        else:
            cmd += [f"--address=127.0.0.1:{GCS_PORT}"]
        if str(i) in c["node_names"]:
            cmd += [f"--node-name={c['node_names'][str(i)]}"]
        env = self.base_env()
        env.update(c["node_env"].get(str(i), {}))
        with open(self.work / f"node{i}.log", "wb") as log:
            return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, i: int, deadline: float) -> None:
        logf = self.work / f"node{i}.log"
        while time.monotonic() < deadline:
            if "block forever" in logf.read_text(errors="replace"):
                return
            if self.nodes[i].poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"node {i} failed to start:\n{logf.read_text(errors='replace')[-3000:]}")

    def kill_node(self, idx: int | None, why: str) -> None:
        with self.lock:
            n = len(self.nodes)
            i = self.cfg["kill_node"] if idx is None else idx
            head_asked = i == 0
            i = i % n if n else 0
            if not n or (i == 0 and not head_asked) or any(k["index"] == i for k in self.report["killed"]):
                self.log(f"refusing to kill node {i} ({why})")
                return
            p = self.nodes[i]
            # The whole tree at once, like a machine losing power: ray workers sit in their own
            # process groups and would otherwise outlive their raylet for a second or so.
            pids = _descendants(p.pid) + [p.pid]
            self.log(f"SIGKILL node {i}: pids {pids} ({why})")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.report["killed"].append({"index": i, "pids": pids, "why": why,
                                          "t": round(time.monotonic() - self.t0, 3)})
            (self.work / "killed").write_text(str(i))

    # -- monitoring
    def sample_sockets(self) -> None:
        socks = proc_net_sockets()
        rep = self.report
        rep["socket_samples"] += 1
        rep["max_sockets"] = max(rep["max_sockets"], len(socks))
        for s in socks:
            l_loop, l_any = _loopback_or_wildcard(s["lhost"])
            r_loop, r_any = _loopback_or_wildcard(s["rhost"])
            if not (l_loop or l_any) or not (r_loop or r_any):
                if s not in rep["socket_violations"]:
                    rep["socket_violations"].append(s)
            elif l_any and s["local"] not in rep["wildcard_binds"]:
                rep["wildcard_binds"].append(s["local"])

    def monitor(self) -> None:
        kill_file = self.work / "kill"
        while not self.done.is_set():
            self.sample_sockets()
            if kill_file.exists():
                txt = kill_file.read_text().strip()
                kill_file.unlink()
                self.kill_node(int(txt) if txt else None, "kill file")
            time.sleep(0.2)

    def snapshot(self) -> None:
        if shutil.which("ss"):
            out = subprocess.run(["ss", "-tuanp"], check=False, capture_output=True, text=True).stdout
            self.report["ss_snapshots"].append(out)

    def pump_stdout(self, out_path: Path) -> None:
        assert self.driver is not None and self.driver.stdout is not None
        c = self.cfg
        with open(out_path, "w") as out:
            for raw in self.driver.stdout:
                line = raw.decode(errors="replace")
                out.write(line)
                out.flush()
                if c["snapshot_marker"] and c["snapshot_marker"] in line:
                    self.snapshot()
                if c["kill_marker"] and c["kill_marker"] in line:
                    self.kill_node(None, "marker")
                if c["interrupt_marker"] and c["interrupt_marker"] in line:
                    self.log("SIGINT to driver")
                    self.driver.send_signal(signal.SIGINT)

    # -- teardown
    def others(self) -> list[int]:
        me = os.getpid()
        return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me
                      and _state(int(p)) not in ("Z", "X", ""))

    def teardown(self, grace: float = 10.0) -> None:
        t = time.monotonic()
        for p in reversed(self.nodes):  # extra nodes first, head last
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # `ray start --block` drains then stops its processes
        deadline = time.monotonic() + grace
        for p in self.nodes:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        time.sleep(0.3)
        self.report["leftover_after_sigterm"] = [_cmdline(p) for p in self.others()]
        for pid in self.others():  # in our own pid namespace, everything but us is ours
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap_all(2.0)
        self.report["leftover_final"] = [_cmdline(p) for p in self.others()]
        self.report["teardown_s"] = round(time.monotonic() - t, 3)

    def run(self) -> int:
        c = self.cfg
        self.t0 = time.monotonic()
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        # We are PID 1 of a fresh pid namespace: orphans of the nodes get reparented to us.
        self.report["interfaces"] = _interfaces()
        if self.report["interfaces"] != ["lo"]:
            raise RuntimeError(f"not a private netns: {self.report['interfaces']}")
        self.token = secrets.token_hex(32)
        mon = threading.Thread(target=self.monitor, daemon=True)
        mon.start()
        rc = -1
        try:
            deadline = time.monotonic() + 120
            if c["nodes"]:
                self.nodes.append(self.start_node(0))
                self.wait_ready(0, deadline)
                self.report["head_ready_s"] = round(time.monotonic() - self.t0, 3)
            for i in range(1, c["nodes"]):
                self.nodes.append(self.start_node(i))
            for i in range(1, c["nodes"]):
                self.wait_ready(i, deadline)
            self.report["startup_s"] = round(time.monotonic() - self.t0, 3)
            self.report["nodes"] = [{"index": i, "pid": p.pid} for i, p in enumerate(self.nodes)]
            self.log(f"cluster of {c['nodes']} up in {self.report['startup_s']} s")
            env = self.base_env()
            if c["nodes"]:
                env["RAY_ADDRESS"] = f"127.0.0.1:{GCS_PORT}"
            env.update({"RAY_NETNS_NODES": str(c["nodes"]), "RAY_NETNS_KILL_FILE": str(self.work / "kill"),
                        "RAY_NETNS_KILLED_FILE": str(self.work / "killed")})
            env.update(c["driver_env"])
            t = time.monotonic()
            with open(self.work / "driver.err", "wb") as err:
                self.driver = subprocess.Popen(c["driver"], stdout=subprocess.PIPE, stderr=err,
                                               env=env, cwd=c["cwd"], start_new_session=True)
                pump = threading.Thread(target=self.pump_stdout, args=(self.work / "driver.out",))
                pump.start()
                try:
                    rc = self.driver.wait(timeout=c["timeout"])
                except subprocess.TimeoutExpired:
                    self.log("driver timed out: SIGINT")
                    self.report["driver_timed_out"] = True
                    self.driver.send_signal(signal.SIGINT)
                    try:
                        rc = self.driver.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        os.killpg(self.driver.pid, signal.SIGKILL)
                        rc = self.driver.wait()
                pump.join(timeout=10)
            self.report["driver_s"] = round(time.monotonic() - t, 3)
            self.report["driver_end_t"] = round(time.monotonic() - self.t0, 3)  # on the clock of killed[].t
            self.sample_sockets()
        except Exception as e:
            self.report["error"] = repr(e)[-3000:]
            raise
        finally:
            self.done.set()
            mon.join(timeout=5)
            # Without their head, the other nodes' `ray start --block` do not drain on SIGTERM.
            self.teardown(grace=2.0 if any(k["index"] == 0 for k in self.report["killed"]) else 10.0)
            self.report["driver_returncode"] = rc
            (self.work / "report.json").write_text(json.dumps(self.report, indent=1))
        return 0


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"{pid} ?"
    text = raw.replace(b"\0", b" ").decode(errors="replace")
    return f"{pid} {text[:160]}"


def _reap_all(wait: float) -> None:
    end = time.monotonic() + wait
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > end:
                return
            time.sleep(0.05)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--supervise"]:
        sup = _Supervisor(json.loads(Path(argv[1]).read_text()))
        return sup.run()
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=1)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--interrupt-marker")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--ray-health-check", action="store_true", help="keep Ray's slow default")
    ap.add_argument("driver")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    t = time.monotonic()
    res = run_ray_driver(a.driver, a.args, nodes=a.nodes, cpus_per_node=a.cpus, python=a.python,
                         interrupt_marker=a.interrupt_marker, timeout=a.timeout,
                         fast_failure_detection=not a.ray_health_check)
    rep = {k: v for k, v in res.report.items() if k != "ss_snapshots"}
    print(res.stdout, end="")
    print(res.stderr, end="", file=sys.stderr)
    print(json.dumps({"returncode": res.returncode, "wall_s": round(time.monotonic() - t, 2),
                      "report": rep}, indent=1))
    for snap in res.report.get("ss_snapshots", []):
        print(snap)
    return 0 if res.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
