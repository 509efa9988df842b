"""SROT on simulation_gene_data.csv (eps = 0.003, lam = 10, raw squared Euclidean cost): solved to the
optimality residual (semi-dual L-BFGS, the default) against the original's 1000 scaling iterations
(flag srot_solver="scaling", max_iter=1000). Reports mean factors (= count ratios), the proliferating branch's
(x2 > 1) factors against the rest's, the factor range and the solver's iterations.

    uv run python packages/ot-cells/benchmarks/srot_reference.py
"""

from __future__ import annotations

import warnings

import ot_cells as oc
from ot_cells.couplings import srot_coupling
from ot_cells.snapshots import read_snapshots

from common import parser, save, setup


def pair_stats(S, k: int, **solver) -> dict:
    c = srot_coupling(S.X[k], S.X[k + 1], 1.0, (S.relative_mass[k], S.relative_mass[k + 1]), n0=len(S.X[0]),
                      epsilon=0.003, reg_m=10.0, scale_cost=None, **solver)
    branch = S.X[k][:, 1] > 1
    factor = c.mass_factor
    out = {k_: c.stats[k_] for k_ in ("n_iter", "converged", "residual", "mean_factor", "min_factor", "max_factor")}
    out["branch_factor"] = float(factor[branch].mean()) if branch.any() else None
    out["rest_factor"] = float(factor[~branch].mean())
    if c.stats["converged"]:
        out["objective"] = c.stats["objective"]  # the primal value at the optimum
    return out


def main() -> None:
    args = parser(__doc__).parse_args()
    started = setup(args)
    S = read_snapshots(oc.datasets.simulation_gene(args.data / "simulation_gene_data.csv"), "time", "X_emb")
    result = {}
    for name, solver in (("semidual (default)", {}), ("scaling, 1000 iterations (original)",
                                                     {"solver": "scaling", "max_iter": 1000})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the 1000-iteration runs stop before tol, by design
            result[name] = [pair_stats(S, k, **solver) for k in range(len(S.times) - 1)]
    print("| pair | solver | iterations | mean factor | branch / rest factor | factor range | objective |")
    print("|---|---|---|---|---|---|---|")
    for name, pairs in result.items():
        for k, p in enumerate(pairs):
            br = "-" if p["branch_factor"] is None else f"{p['branch_factor']:.3f}"
            obj = f"{p['objective']:.2f}" if "objective" in p else "(not optimal)"
            print(f"| {k}->{k + 1} | {name} | {p['n_iter']} | {p['mean_factor']:.3f} | {br} / {p['rest_factor']:.3f} | "
                  f"[{p['min_factor']:.3f}, {p['max_factor']:.3f}] | {obj} |")
    save(args, "srot_reference", {"pairs": result}, started)


if __name__ == "__main__":
    main()
