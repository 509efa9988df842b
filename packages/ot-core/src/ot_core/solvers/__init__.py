"""Solvers: log-domain Sinkhorn (balanced, unbalanced, semi-relaxed), semi-dual L-BFGS, entropic and exact
partial OT, exact OT, L2-regularised OT, barycenters."""
