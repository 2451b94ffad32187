"""Runs a program (tritonserver, the calibration child) so that it dies with the thread that started it and runs on
the given cores: PR_SET_PDEATHSIG, then the affinity, then exec. Run as a script by path (`launch_command`):
    python serving/launcher.py PARENT_PID CPUS PROGRAM [ARGS...]
Standard library only, and nothing imported from the project: it sits between a start and the exec."""
import ctypes
import os
import signal
import sys


def main() -> None:
    ppid, cpus, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
        sys.exit("launcher: prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != ppid:
        sys.exit("launcher: the process that started it is gone")
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
