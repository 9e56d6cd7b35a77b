"""Torch CPU threading on a small machine: default vs OMP_WAIT_POLICY=PASSIVE vs one thread, idle and busy.

    python -m bench.threads     # ~1 min

Each setting runs MiniLM over 512 sentences in a fresh process (the OpenMP settings are read once, when
torch loads), first on an idle machine, then while another process keeps one core 100 % busy. Throughput is
relative to the default setting on the idle machine, measured in the same run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

SETTINGS = [("default (all cores, spinning waits)", {}), ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}),
            ("OMP_NUM_THREADS=1", {"OMP_NUM_THREADS": "1"})]
PROBE = """
import time
from latentfuse.encoders import build_encoder
encoder = build_encoder("minilm-l6")
texts = [f"a dog runs on the beach with a red ball, picture number {i}" for i in range(512)]
encoder.encode(texts[:64])
best = 0.0
for _ in range(2):
    started = time.perf_counter()
    encoder.encode(texts)
    best = max(best, 512 / (time.perf_counter() - started))
print(best)
"""
BURN = "import time\nend = time.time() + 600\nwhile time.time() < end: pass\n"


def rate(extra_env: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(extra_env, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    results = {label: [rate(env)] for label, env in SETTINGS}
    burner = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        time.sleep(1)
        for label, env in SETTINGS:
            results[label].append(rate(env))
    finally:
        burner.kill()
    base = results[SETTINGS[0][0]][0]
    print("| setting | idle texts/s | × default idle | one core busy texts/s | × default idle |")
    print("|---|---|---|---|---|")
    for label, (idle, busy) in results.items():
        print(f"| {label} | {idle:.0f} | {idle / base:.2f} | {busy:.0f} | {busy / base:.2f} |")


if __name__ == "__main__":
    main()
