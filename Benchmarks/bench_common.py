"""Helpers shared by the benchmark scripts of this folder (imported from the script's own directory)."""
import os
import platform


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or what `platform` knows elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def find_litecnn(explicit):
    """`explicit` when given, else the most recently built `.build*/release/litecnn` of this checkout (several scratch
    folders may exist), else `litecnn` from PATH."""
    if explicit:
        return explicit
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = []
    for entry in os.listdir(root):
        path = os.path.join(root, entry, "release", "litecnn")
        if entry.startswith(".build") and os.path.isfile(path) and os.access(path, os.X_OK):
            candidates.append(path)
    return max(candidates, key=os.path.getmtime) if candidates else "litecnn"
