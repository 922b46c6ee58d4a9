"""Describe the machine a benchmark ran on (written into every results file)."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> dict:
    """CPU model, usable cores, OS, Python, and GPU if torch sees one."""
    info = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def machine_slug(info: dict | None = None) -> str:
    """Short name for result files: 'gpu-<name>' or 'cpu-<n>core'."""
    info = info or machine_description()
    if "gpu" in info:
        return "gpu-" + "".join(c if c.isalnum() else "-" for c in info["gpu"].lower()).strip("-")
    return f"cpu-{info['cores']}core"


def write_result(result: dict, name: str, out: str | None = None) -> str:
    """Write ``result`` as JSON to ``out`` or benchmarks/results/<name>-<machine>.json (the
    machine from ``result["machine"]``); returns the path."""
    import json

    out = out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                              f"{name}-{machine_slug(result['machine'])}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", out)
    return out
