"""Confound-table speed: analyze_language.py's NMI of every method's clusters against every
attribute, with metrics.nmi (numpy, on the contingency table) beside scikit-learn's
normalized_mutual_info_score on the same calls.

    python bench/bench_confounds.py                # 307 segments, 40 methods x 5 seeds, as the demo
    python bench/bench_confounds.py --segments 15 --methods 47

Prints the seconds of one confound table each way.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import diagnostics  # noqa: E402
import metrics  # noqa: E402

SEED = 0  # of the random clusters and attributes


def table_seconds(columns, clusterings):
    t = time.perf_counter()
    for c in clusterings:
        diagnostics.confound_nmi(c, columns)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--segments", type=int, default=307, help="segments per clustering")
    p.add_argument("--methods", type=int, default=40, help="methods in the table (5 seeds each)")
    p.add_argument("--seed", type=int, default=SEED, help="seed of the random clusters and attributes")
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.segments
    columns = pd.DataFrame({"language": rng.integers(0, 2, n).astype(str), "artist": rng.integers(0, 16, n).astype(str),
                            "position": rng.integers(0, 4, n).astype(str), "key": rng.integers(0, 12, n).astype(str),
                            "tempo_bpm": rng.integers(0, 5, n).astype(str)})
    clusterings = [rng.integers(0, 2, n) for _ in range(args.methods * 5)]
    ours = table_seconds(columns, clusterings)
    numpy_nmi = metrics.nmi
    metrics.nmi = lambda a, b: float(normalized_mutual_info_score(metrics._codes(a)[0], metrics._codes(b)[0]))
    try:
        theirs = table_seconds(columns, clusterings)
    finally:
        metrics.nmi = numpy_nmi
    print(f"confound table, {args.methods} methods x 5 seeds, {n} segments: metrics.nmi {ours:.2f} s, "
          f"scikit-learn {theirs:.2f} s ({theirs / max(ours, 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
