"""Error rates of verify's Recall@10 non-inferiority gate, by simulation (docs/verify.md).

    python scripts/gate_error_rates.py                 # the table in docs/verify.md (~30 s)
    python scripts/gate_error_rates.py --hit-rate 0.05 --changed 0.003 --users 2000

Each trial draws paired per-user hits (reference hit rate ``--hit-rate``, a share ``--changed``
of users whose candidate hit differs) for a candidate whose true relative Recall change is one
of ``--changes``, runs the gate's paired bootstrap and decision
(``onerec_trt.verify.noninferiority.simulate_gate``) and counts pass / inconclusive / fail, and
how often the old gate (the point estimate below -margin) failed. Prints a markdown table.
"""

from __future__ import annotations

import argparse

from onerec_trt.tables import markdown_lines, markdown_row
from onerec_trt.verify.noninferiority import FAIL, INCONCLUSIVE, PASS, simulate_gate


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--changes", type=floats, default=[0.0, -0.005, -0.01, -0.03, -0.05],
                   help="true relative Recall changes")
    p.add_argument("--users", type=lambda t: [int(x) for x in t.split(",")],
                   default=[1000, 6040, 20000])
    p.add_argument("--changed", type=floats, default=[0.02, 0.10],
                   help="shares of users whose hit changes")
    p.add_argument("--hit-rate", type=float, default=0.2, help="the reference's Recall@10")
    p.add_argument("--margin", type=float, default=0.01)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per trial")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print("\n".join(markdown_lines(["true change", "users", "users changed", "pass",
                                    "inconclusive", "fail", "old gate: fail"], [])))
    for change in a.changes:
        for users in a.users:
            for changed in a.changed:
                r = simulate_gate(change, users, hit_rate=a.hit_rate, changed=changed,
                                  margin=a.margin, confidence=a.confidence,
                                  resamples=a.resamples, trials=a.trials, seed=a.seed)
                print(markdown_row([f"{change:+.1%}", f"{users:,}", f"{changed:.0%}",
                                    f"{r[PASS]:.1%}", f"{r[INCONCLUSIVE]:.1%}", f"{r[FAIL]:.1%}",
                                    f"{r['point_fail']:.1%}"]), flush=True)


if __name__ == "__main__":
    main()
