"""simulation_gene_data.csv (DeepRUOT/VGFM synthetic gene network), protocol of the paper's Table 1: fit on all
time points with the original run's settings (preset "simulation_gene"), W1 and relative mass error at t = 1..4.

    uv run python packages/ot-cells/benchmarks/simulation_gene.py --seeds 0 1 2
"""

from __future__ import annotations

import numpy as np

import ot_cells as oc

from common import mean_sd, parser, save, setup


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--preset", default="simulation_gene")
    args = p.parse_args()
    started = setup(args)
    adata = oc.datasets.simulation_gene(args.data / "simulation_gene_data.csv")
    vg = oc.VGFM(adata, time_key="time", rep="X_emb", config=args.preset)
    runs = []
    for seed in args.seeds:
        table = vg.fit(progress=False, seed=seed).evaluate()  # couplings computed once, shared by the seeds
        runs.append({"seed": seed, "time": table["time"].tolist(), "w1": table["w1"].tolist(),
                     "rme": table["rme"].tolist(), "mean_w1": float(table["w1"].mean()),
                     "mean_rme": float(table["rme"].mean()), "best_epoch": vg.best_epoch})
    couplings = [iv.coupling.stats for iv in vg.intervals]
    print("| t | W1 | RME |\n|---|---|---|")
    for i, t in enumerate(runs[0]["time"]):
        print(f"| {t:g} | {mean_sd([r['w1'][i] for r in runs])} | {mean_sd([r['rme'][i] for r in runs])} |")
    print(f"| mean | {mean_sd([r['mean_w1'] for r in runs])} | {mean_sd([r['mean_rme'] for r in runs])} |")
    save(args, "simulation_gene", {"preset": args.preset, "config": vg.config.to_dict(), "runs": runs,
                                   "couplings": couplings,
                                   "summary": {"mean_w1": float(np.mean([r["mean_w1"] for r in runs])),
                                               "mean_rme": float(np.mean([r["mean_rme"] for r in runs]))}}, started)


if __name__ == "__main__":
    main()
