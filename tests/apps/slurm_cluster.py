"""A private single-node Slurm on 127.0.0.1 for the `slurm` tests (Debian 12: slurm-wlm 22.05, munge).

Everything lives in one folder the caller owns: the munge key, socket, pid, log and seed files;
slurm.conf with its own ports (free ones, picked at start), state and spool folders, pid and log
files; a CPU-only node with this machine's cores and one partition that is NOT the default (so a
job that names no partition is refused, and a `--partition` passthrough is visible).

Clients must run with `env()` (SLURM_CONF points at the private slurm.conf). `stop()` cancels the
jobs of this cluster, then stops the three daemons by the pids this object started (SIGTERM, then
SIGKILL after a grace period). Each daemon is started with PR_SET_PDEATHSIG=SIGTERM, so even a test
driver killed by SIGKILL (a ctest timeout) takes its daemons with it.
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time

PARTITION = "wdlabtest"
PR_SET_PDEATHSIG = 1


class CannotStart(Exception):
    """Slurm (or munge) is missing or does not come up: the test skips with this reason."""


def _die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _find(name):
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for n in (name, name + "-wlm"):  # Debian installs slurmctld-wlm and an alternative
            p = os.path.join(d, n)
            if os.access(p, os.X_OK):
                return p
    return shutil.which(name)


def _tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


class Cluster:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.procs = []  # (name, Popen), in start order
        self.conf = os.path.join(self.root, "slurm.conf")
        self.node = socket.gethostname().split(".")[0]

    def env(self, extra=None):
        e = dict(os.environ)
        e["SLURM_CONF"] = self.conf
        for k in [k for k in e if k.startswith(("SBATCH_", "SLURM_")) and k != "SLURM_CONF"]:
            del e[k]  # a caller's own Slurm settings must not leak into the private cluster
        e.update(extra or {})
        return e

    def run(self, *args, check=True, extra_env=None, timeout=30):
        r = subprocess.run(list(args), env=self.env(extra_env), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def _spawn(self, name, argv, log):
        p = subprocess.Popen(argv, env=self.env(), stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                             preexec_fn=_die_with_parent)
        self.procs.append((name, p))
        return p

    def start(self, timeout=30):
        if os.geteuid() != 0:
            raise CannotStart("not root: slurmd must run as root to start job steps")
        exe = {n: _find(n) for n in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo",
                                     "scontrol")}
        missing = [n for n, p in exe.items() if not p]
        if missing:
            raise CannotStart(f"not installed: {', '.join(missing)} (Debian: slurm-wlm munge; scripts/setup.sh test)")
        self.exe = exe
        r = self.root
        for d in ("munge", "state", "spool", "log"):
            os.makedirs(os.path.join(r, d), mode=0o700, exist_ok=True)
        os.chmod(r, 0o755)
        key = os.path.join(r, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self.munge_socket = os.path.join(r, "munge", "munge.socket")
        munged = self._spawn("munged", [exe["munged"], "--foreground", "--force", f"--key-file={key}",
                                        f"--socket={self.munge_socket}",
                                        f"--pid-file={os.path.join(r, 'munge', 'munged.pid')}",
                                        f"--log-file={os.path.join(r, 'log', 'munged.log')}",
                                        f"--seed-file={os.path.join(r, 'munge', 'munged.seed')}"],
                             os.path.join(r, "log", "munged.out"))
        self._wait(lambda: os.path.exists(self.munge_socket), 10, "munged socket",
                   lambda: munged.poll() is None, os.path.join(r, "log", "munged.log"))
        ctld_port, d_port = _free_port(), _free_port()
        while d_port == ctld_port:
            d_port = _free_port()
        cpus = os.cpu_count() or 1
        with open(self.conf, "w") as f:
            f.write(f"""# private single-node Slurm of a wdlab test
ClusterName=wdlabtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
MinJobAge=600
KillWait=10
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.node} MaxTime=INFINITE State=UP
""")
        ctld = self._spawn("slurmctld", [exe["slurmctld"], "-D", "-i", "-f", self.conf],
                           os.path.join(r, "log", "slurmctld.out"))
        slurmd = self._spawn("slurmd", [exe["slurmd"], "-D", "-f", self.conf, "-N", self.node],
                             os.path.join(r, "log", "slurmd.out"))

        def idle():
            if ctld.poll() is not None or slurmd.poll() is not None:
                return False
            s = self.run(exe["sinfo"], "-h", "-N", "-o", "%T", check=False, timeout=10)
            return s.returncode == 0 and s.stdout.strip() in ("idle", "mixed", "allocated")

        self._wait(idle, timeout, "the node to be idle",
                   lambda: ctld.poll() is None and slurmd.poll() is None,
                   os.path.join(r, "log", "slurmctld.log"), os.path.join(r, "log", "slurmd.log"))
        self.cpus = cpus

    def _wait(self, ready, timeout, what, alive, *logs):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if ready():
                return
            if not alive():
                break
            time.sleep(0.2)
        detail = "\n".join(f"--- {l}:\n{_tail(l)}" for l in logs)
        dead = [f"{n} exited {p.returncode}" for n, p in self.procs if p.poll() is not None]
        raise CannotStart(f"waiting for {what} ({timeout} s){': ' + ', '.join(dead) if dead else ''}\n{detail}")

    def stop(self):
        """Cancels every job of this cluster, then stops the daemons this object started, by pid
        (self.procs keeps them, so a caller can check that none is left)."""
        if any(n == "slurmctld" and p.poll() is None for n, p in self.procs):
            try:
                self.run(self.exe["scancel"], "--full", "--user", "root", check=False, timeout=10)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 15:  # the job steps end before their slurmd goes
                    q = self.run(self.exe["squeue"], "-h", "-o", "%i", check=False, timeout=10)
                    if q.returncode != 0 or not q.stdout.strip():
                        break
                    time.sleep(0.3)
            except (subprocess.SubprocessError, OSError):
                pass
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
