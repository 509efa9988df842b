"""Leave-one-time-point-out on mouse hematopoiesis (Weinreb et al. 2020; days 2, 4, 6): hold out day 4, train on
days 2 and 6, and score the held-out day by W1 and relative mass error. Side by side: VGFM (preset
"mouse_hematopoiesis"), the balanced OT-CFM baseline on the same networks and stages (exact OT pairs, g = 0),
static SROT interpolation, the nearest observed days, and moscot's TemporalProblem interpolation (optional
dependency group "bench": its interpolated cells scored with the same exact W1).

    uv run --group bench python packages/ot-cells/benchmarks/mouse_holdout.py --seeds 0 1 2

moscot's interpolation samples target cells for ``batch_size`` source cells at a time through an n x m x batch_size
tensor (1429 x 5788 x 256 float32 = 8.5 GB at its default, 18 GB resident seen); ``MOSCOT_BATCH`` source cells
per batch keep it near 1 GB (the samples are the same routine's). `--no-moscot` skips moscot.
"""

from __future__ import annotations

import numpy as np

import ot_cells as oc
from ot_cells.metrics import relative_mass_error, w1

from common import mean_sd, parser, save, setup

HOLD_OUT = 4.0
MOSCOT_BATCH = 32


def moscot_rows(adata, seeds, tau_a: float, epsilon: float, scale_cost) -> list[dict]:
    """moscot TemporalProblem on days 2 -> 6 (day 4 never seen), interpolated at day 4 with moscot's own
    routine (the one behind compute_interpolated_distance); mass M_2 * mean_i (n a_i^post)^s."""
    from moscot.problems.time import TemporalProblem

    tp = TemporalProblem(adata).prepare(time_key="day", joint_attr="X_emb", policy="explicit", subset=[(2.0, 6.0)])
    tp = tp.solve(epsilon=epsilon, tau_a=tau_a, scale_cost=scale_cost)
    s = (HOLD_OUT - 2.0) / 4.0
    src = adata.obsm["X_emb"][adata.obs["day"] == 2.0]
    tgt = adata.obsm["X_emb"][adata.obs["day"] == 6.0]
    obs = adata.obsm["X_emb"][adata.obs["day"] == HOLD_OUT]
    m2, m4 = 1.0, (adata.obs["day"] == HOLD_OUT).sum() / (adata.obs["day"] == 2.0).sum()
    plan = np.asarray(tp[(2.0, 6.0)].solution.transport_matrix)
    factor = plan.sum(1) * len(src)  # moscot's marginals sum to 1: growth relative to the mean
    mass = m2 * float(np.mean(factor**s))
    rows = []
    for seed in seeds:
        pts = tp._interpolate_gex_with_ot(number_cells=len(obs), source_data=src, target_data=tgt, source=2.0,
                                          target=6.0, interpolation_parameter=s, account_for_unbalancedness=False,
                                          batch_size=MOSCOT_BATCH, seed=seed)
        rows.append({"method": f"moscot TemporalProblem (tau_a={tau_a:g}, eps={epsilon:g})", "seed": seed,
                     "w1": w1(np.asarray(pts), obs), "rme": relative_mass_error(mass, m4), "mass_pred": mass,
                     "mass_obs": float(m4)})
    return rows


def moscot_baselines(adata, seeds) -> list[dict]:
    """moscot with VGFM's settings (tau_a from lambda and epsilon, raw cost), then with moscot's defaults."""
    preset = oc.VGFMConfig.preset("mouse_hematopoiesis")
    tau = preset.reg_m / (preset.reg_m + preset.epsilon)
    rows = moscot_rows(adata, seeds, tau_a=tau, epsilon=preset.epsilon, scale_cost=1.0)
    return rows + moscot_rows(adata, seeds, tau_a=1.0, epsilon=1e-3, scale_cost="mean")


def summarise(rows: list[dict]) -> dict:
    """Mean held-out W1 and RME per method; prints the Markdown table (mean ± sd over seeds)."""
    print("| method | held-out W1 | held-out RME |\n|---|---|---|")
    summary = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == m]
        summary[m] = {"w1": float(np.mean([r["w1"] for r in sel])), "rme": float(np.mean([r["rme"] for r in sel])),
                      "seeds": len(sel)}
        print(f"| {m} | {mean_sd([r['w1'] for r in sel])} | {mean_sd([r['rme'] for r in sel])} |", flush=True)
    return summary


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--no-moscot", action="store_true", help="skip the moscot baseline")
    p.add_argument("--moscot-only", action="store_true", help="run only the moscot baseline")
    args = p.parse_args()
    started = setup(args)
    adata = oc.datasets.mouse_hematopoiesis(args.data / "mouse_hematopoiesis.csv")
    rows: list[dict] = []
    if args.moscot_only:
        rows = moscot_baselines(adata, args.seeds)
        save(args, "mouse_holdout_moscot", {"hold_out": HOLD_OUT, "rows": rows, "summary": summarise(rows)}, started)
        return
    for i, seed in enumerate(args.seeds):  # one seed at a time, results saved after each
        table = oc.tl.holdout_benchmark(adata, "day", "X_emb", [HOLD_OUT], seeds=[seed],
                                        config="mouse_hematopoiesis")
        new = table.to_dict(orient="records")
        rows += new if i == 0 else [r for r in new if r["method"] in ("VGFM", "OT-CFM (growth-free)")]
        if i == 0 and not args.no_moscot:
            rows += moscot_baselines(adata, args.seeds)
        summary = summarise(rows)
        save(args, "mouse_holdout", {"hold_out": HOLD_OUT, "seeds_done": args.seeds[: i + 1], "rows": rows,
                                     "summary": summary}, started)


if __name__ == "__main__":
    main()
