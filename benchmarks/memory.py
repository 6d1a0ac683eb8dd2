"""Memory figures of the running process, for the benchmarks' peak-memory measurements."""


def memory_mb(field: str) -> float:
    """A ``/proc/self/status`` memory figure in MB: ``VmRSS`` now, or ``VmHWM``, its peak.

    ``VmHWM`` belongs to the process image and starts afresh at ``exec``, unlike
    ``getrusage``'s ``ru_maxrss``, which a child process inherits from its parent.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")
