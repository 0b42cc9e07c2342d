"""Flower's deployment engine on one machine: a SuperLink and one SuperNode per hospital on 127.0.0.1.

`LocalFederation` starts `flower-superlink` and the `flower-supernode`s (insecure: 127.0.0.1 only) on
free ports, each with its own FLWR_HOME and log file, submits the Flower App with `flwr run` and
follows the run by its status (`flwr ls --run-id ... --format json`: `flwr run` can exit 0 for a run
that failed).  Every process it started, and every process those started (SuperExec, ServerApp,
ClientApps), is stopped by its PID when it stops, also after an error.  Torch-free.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import FedTrainError
from .common import NODE_PRIVATE_KEY, RUN_FILE
from .prepare import FlowerSetup

CONNECTION = "fedtrain-local"
FINISHED = "finished"


class FlowerRunError(FedTrainError):
    """The Flower run did not complete (its status, and where its logs are, in the message)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def executable(name: str) -> str:
    """A Flower command of this Python's environment (beside sys.executable), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FedTrainError(f"`{name}` is not installed: pip install 'fastpaillier[fl,flwr]' (flwr==1.42.0)")
    return found


def make_certificates(folder: str | os.PathLike, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                      *, days: int = 30) -> tuple[Path, Path, Path]:
    """A throw-away CA and a SuperLink certificate for `hosts` (ca.crt, server.pem, server.key) in `folder`.

    For a TLS run on one machine (tests, the demo with --tls); across machines use your organisation's
    certificates, as Flower's TLS guide says.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedtrain local CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    paths = out / "ca.crt", out / "server.pem", out / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(paths[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return paths


def _children() -> dict[int, list[int]]:
    """{parent pid: child pids} of every process visible in /proc (empty where there is no /proc)."""
    tree: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return tree
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """`pid`'s child processes, their children, and so on."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: only its parent's wait is missing
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def stop_tree(process: subprocess.Popen, *, grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Stops `process` and everything it started, each by its PID: `sig`, then SIGKILL after `grace` seconds."""
    pids = descendants(process.pid) + [process.pid]
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    end = time.monotonic() + grace
    while time.monotonic() < end and any(_alive(p) for p in pids if p != process.pid):
        time.sleep(0.1)
    try:
        process.wait(timeout=max(0.1, end - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    for pid in pids + [p for p in descendants(process.pid)]:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be refused
        pass


class LocalFederation:
    """A SuperLink and one SuperNode per hospital of `setup`, on 127.0.0.1; use as a context manager.

    `simulation=True`: Flower's simulation engine instead (a SuperLink with --simulation runs every
    ClientApp itself, on Ray: needs `flwr[simulation]`); its nodes have no node config, so each takes
    its partition id as client id and its part of the run's data set, and the key file comes by run config.
    """

    def __init__(self, setup: FlowerSetup, workdir: str | os.PathLike, *, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None, tls: bool = False, simulation: bool = False) -> None:
        self.setup = setup
        self.workdir = Path(workdir)
        self.host = host
        self.tls = tls
        self.simulation = simulation
        self.certificates: tuple[Path, Path, Path] | None = None
        self.env = dict(os.environ if env is None else env)
        bindir = str(Path(executable("flower-superlink")).parent)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "")  # SuperLink starts flower-superexec
        self.env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
        self.env.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
        self.env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.2")  # ClientApps start sooner (default 1 s)
        self.superlink: subprocess.Popen | None = None
        self.supernodes: dict[int, subprocess.Popen] = {}
        self.port: int | None = None
        self.logs = self.workdir / "logs"

    # -- processes ------------------------------------------------------------------------------
    def _home(self, name: str) -> Path:
        home = self.workdir / "flwr_home" / name
        home.mkdir(parents=True, exist_ok=True)
        return home

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        env = dict(self.env, FLWR_HOME=str(self._home(name)))
        with open(self.logs / f"{name}.log", "ab") as log:
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    cwd=self.workdir, start_new_session=True)

    def start(self, *, timeout: float = 60.0) -> "LocalFederation":
        """Starts the SuperLink, waits for it to listen, then starts the SuperNodes."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        if self.tls:
            self.certificates = make_certificates(self.workdir / "certificates", (self.host, "localhost"))
            ca, cert, key = self.certificates
            security = ["--ssl-ca-certfile", str(ca), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
        else:
            security = ["--insecure"]
        if self.simulation:
            import importlib.util

            if importlib.util.find_spec("ray") is None:
                raise FedTrainError("Flower's simulation engine needs Ray: pip install 'flwr[simulation]==1.42.0' "
                                    "(or use the deployment engine)")
            security.append("--simulation")
        self.superlink = self._spawn("superlink", [
            executable("flower-superlink"), *security, "--host", self.host, "--port", str(self.port),
            "--disable-runtime-dependency-installation"])
        self._wait_listening(self.port, self.superlink, "superlink", timeout)
        if not self.simulation:
            for cid in range(self.setup.clients):
                self.start_node(cid)
        return self

    def start_node(self, cid: int) -> subprocess.Popen:
        """Starts hospital `cid`'s SuperNode (its node config from the set-up)."""
        security = ["--root-certificates", str(self.certificates[0])] if self.certificates else ["--insecure"]
        process = self._spawn(f"supernode_{cid}", [
            executable("flower-supernode"), *security, "--superlink", f"{self.host}:{self.port}",
            "--host", self.host, "--port", str(free_port(self.host)),
            "--node-config", self.setup.node_config_arg(cid)])
        self.supernodes[cid] = process
        return process

    def kill_node(self, cid: int) -> None:
        """Hospital `cid` goes away: its SuperNode and its ClientApp processes are killed at once (SIGKILL)."""
        stop_tree(self.supernodes[cid], grace=2.0, sig=signal.SIGKILL)

    def stop(self) -> None:
        """Stops every process this federation started, and theirs, by PID (SuperNodes first)."""
        for process in self.supernodes.values():
            stop_tree(process)
        if self.superlink is not None:
            stop_tree(self.superlink)

    def processes(self) -> list[int]:
        """PIDs of the processes started here and of their descendants that are alive now."""
        pids = []
        for process in [self.superlink, *self.supernodes.values()]:
            if process is not None:
                pids += [p for p in [process.pid, *descendants(process.pid)] if _alive(p)]
        return pids

    def __enter__(self) -> "LocalFederation":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _wait_listening(self, port: int, process: subprocess.Popen, name: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if process.poll() is not None:
                raise FlowerRunError(f"{name} exited with {process.returncode}; see {self.logs / (name + '.log')}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                if sock.connect_ex((self.host, port)) == 0:
                    return
            time.sleep(0.2)
        raise FlowerRunError(f"{name} did not listen on {self.host}:{port} within {timeout:g} s; "
                             f"see {self.logs / (name + '.log')}")

    # -- the flwr CLI ---------------------------------------------------------------------------
    def _cli_home(self) -> Path:
        home = self._home("cli")
        security = (f"root-certificates = {json.dumps(str(self.certificates[0]))}\n" if self.certificates
                    else "insecure = true\n")
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{self.host}:{self.port}"\n' + security)
        return home

    def flwr(self, *args: str, timeout: float = 120.0) -> dict[str, Any]:
        """`flwr ARGS --format json` against this SuperLink; its JSON output."""
        env = dict(self.env, FLWR_HOME=str(self._cli_home()))
        proc = subprocess.run([executable("flwr"), *args, "--format", "json"], env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=self.workdir)
        text = proc.stdout.strip()
        try:
            return json.loads(text[text.index("{"):]) if "{" in text else {}
        except ValueError:
            raise FlowerRunError(f"`flwr {' '.join(args)}` printed no JSON (exit {proc.returncode}): "
                                 f"{text[-500:]} {proc.stderr[-500:]}") from None

    def submit(self, *overrides: str) -> int:
        """`flwr run APP`: submits the Flower App; returns the run id (override run config with 'key=value')."""
        args = ["run", str(self.setup.app_dir), CONNECTION]
        if self.simulation:
            key = self.setup.node_configs[0][NODE_PRIVATE_KEY]
            args += ["--federation-config", f"num-supernodes={self.setup.clients}",
                     "--run-config", f"{NODE_PRIVATE_KEY}={json.dumps(key)}"]
        for item in overrides:
            args += ["--run-config", item]
        out = self.flwr(*args)
        if not out.get("success") or not out.get("run-id"):
            raise FlowerRunError(f"`flwr run` did not start a run: {out}")
        return int(out["run-id"])

    def status(self, run_id: int) -> dict[str, Any]:
        """The run's entry of `flwr ls --run-id`: status ('pending', 'running', 'finished:completed', ...)."""
        out = self.flwr("ls", CONNECTION, "--run-id", str(run_id))
        runs = out.get("runs") or []
        return runs[0] if runs else {"status": "unknown", "flwr": out}

    def wait(self, run_id: int, *, timeout: float, poll: float = 0.5, ls_every: float = 15.0) -> dict[str, Any]:
        """Waits until the run has finished (or `timeout`); returns its last status entry (`flwr ls`).

        The ServerApp's own run.json in the server folder says when it is done, so that the flwr CLI (which
        costs a second of CPU a call) is asked every `ls_every` seconds only until then.
        """
        end = time.monotonic() + timeout
        next_ls = time.monotonic() + ls_every
        while True:
            done = _server_done(self.setup.server_dir)
            if done or time.monotonic() >= next_ls:
                info = self.status(run_id)
                if str(info.get("status", "")).startswith(FINISHED):
                    return info
                next_ls = time.monotonic() + (1.0 if done else ls_every)
            if time.monotonic() >= end:
                info = self.status(run_id)
                raise FlowerRunError(f"Flower run {run_id} has not finished within {timeout:g} s (status "
                                     f"{info.get('status')!r}); logs in {self.logs}")
            if self.superlink is not None and self.superlink.poll() is not None:
                raise FlowerRunError(f"the SuperLink exited with {self.superlink.returncode}; see {self.logs}")
            time.sleep(poll)


def _server_done(server_dir: Path) -> bool:
    """Whether the ServerApp wrote that it completed or failed (run.json of the server folder)."""
    try:
        return json.loads((Path(server_dir) / RUN_FILE).read_text()).get("status") in ("completed", "failed")
    except (OSError, ValueError):
        return False


def run_local(setup: FlowerSetup, workdir: str | os.PathLike, *, timeout: float = 3600.0,
              overrides: tuple[str, ...] = (), tls: bool = False, simulation: bool = False,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs a prepared Flower App on a local federation and stops it; raises FlowerRunError unless it completed."""
    with LocalFederation(setup, workdir, tls=tls, simulation=simulation, env=env) as federation:
        run_id = federation.submit(*overrides)
        info = federation.wait(run_id, timeout=timeout)
    if info.get("status") != "finished:completed":
        raise FlowerRunError(f"Flower run {run_id} ended {info.get('status')!r} ({info.get('status-details')}); "
                             f"logs in {federation.logs}, the server's steps in "
                             f"{setup.server_dir / 'events.jsonl'}")
    return info
