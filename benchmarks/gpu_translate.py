"""The Argos-sized package on whatever device this machine has: sentences/s and memory.

    python benchmarks/gpu_translate.py [--package PATH.argosmodel] [--sentences 2048]
                                       [--cpu-sentences 256] [--devices cuda,cpu]

Real prose: CodeAlpaca instructions (one sentence or two each), translated by our engine (the
translate stage's CTranslate2 + SentencePiece path, ``device`` and ``compute_type`` left to
``auto`` as a recipe leaves them) at beam 4 and greedy, on CUDA when there is one and on the CPU.
Per run: sentences/s, the compute type ``auto`` resolved to, and for CUDA the peak GPU memory this
process held (sampled from nvidia-smi, since CTranslate2 allocates outside torch). A prepared
check for a lent GPU machine: it needs nothing else and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED = HERE.parent.parent / "shared"
PACKAGE = SHARED / "models" / "translate-en_ru-bench.argosmodel"
ROWS = SHARED / "data" / "codealpaca-new-4.5k" / "new_codealpaca.json"


def real_sentences(n: int, rows_file: Path = ROWS) -> list[str]:
    records = json.loads(rows_file.read_text(encoding="utf-8"))
    texts = list(dict.fromkeys(r["instruction"].strip() for r in records if r["instruction"].strip()))
    while len(texts) < n:  # more asked than the file holds: numbered repeats, still distinct
        texts += [f"{t} ({len(texts)})" for t in texts[: n - len(texts)]]
    return texts[:n]


class GpuMemory:
    """Peak GPU memory used by this process, sampled every 50 ms from nvidia-smi (MiB)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _used(self) -> int:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return sum(
            int(mem)
            for pid, mem in (line.split(",") for line in out.splitlines() if "," in line)
            if int(pid) == os.getpid()
        )

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._used())
            time.sleep(0.05)

    def __enter__(self) -> GpuMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(package, device: str, beam: int, sentences: list[str]) -> dict:
    from dataset_builder.translation.engine import DecodeSettings, Engine, RuntimeSettings

    engine = Engine(package, DecodeSettings(beam_size=beam), RuntimeSettings(device=device))
    engine.translate(sentences[:8])  # warm-up: kernels and allocator, not timed
    watch = GpuMemory() if engine.device == "cuda" and shutil.which("nvidia-smi") else None
    start = time.perf_counter()
    if watch:
        with watch:
            engine.translate(sentences)
    else:
        engine.translate(sentences)
    seconds = time.perf_counter() - start
    out = {
        "device": engine.device,
        "compute_type": getattr(engine.translator, "compute_type", "auto"),
        "beam": beam,
        "sentences": len(sentences),
        "seconds": round(seconds, 2),
        "sentences_per_s": round(len(sentences) / seconds, 1),
    }
    if watch:
        out["gpu_memory_mib"] = watch.peak
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=PACKAGE)
    parser.add_argument("--sentences", type=int, default=2048, help="sentences per CUDA run")
    parser.add_argument("--cpu-sentences", type=int, default=256, help="sentences per CPU run")
    parser.add_argument(
        "--devices", default="cuda,cpu", help="comma-separated; cuda is skipped without a GPU"
    )
    args = parser.parse_args(argv)
    import ctranslate2

    from dataset_builder.translation import packages

    gpus = ctranslate2.get_cuda_device_count()
    devices = [d for d in args.devices.split(",") if d != "cuda" or gpus > 0]
    runs = []
    with tempfile.TemporaryDirectory(prefix="gpu-translate-") as tmp:
        package = packages.install(args.package, Path(tmp) / "packages")
        for device in devices:
            n = args.sentences if device == "cuda" else args.cpu_sentences
            sentences = real_sentences(n)
            for beam in (4, 1):
                result = run(package, device, beam, sentences)
                runs.append(result)
                memory = f"  {result['gpu_memory_mib']} MiB GPU" if "gpu_memory_mib" in result else ""
                print(
                    f"{result['device']:<5} {result['compute_type']:<14} beam {beam}: {result['sentences']} "
                    f"sentences in {result['seconds']} s, {result['sentences_per_s']} sent/s{memory}",
                    flush=True,
                )
    summary = {
        "benchmark": "gpu_translate",
        "cuda_devices": gpus,
        "gpu": _gpu_name() if gpus else None,
        "cpu_cores": os.cpu_count(),
        "runs": runs,
    }
    print(json.dumps(summary))
    return 0


def _gpu_name() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


if __name__ == "__main__":
    sys.exit(main())
