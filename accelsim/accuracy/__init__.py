"""Accuracy of N:M activation sparsity on real models (torch; never imported by the simulator).

Modules: ``spec`` (patterns, criteria, mitigations; pure Python), ``masks`` (the N:M rule in torch, same as
``accelsim.nm``), ``criteria``, ``mitigations``, ``sparsify`` (the model wrapper), ``calibrate`` (windows,
static shift, learnable fit), ``teal`` (histogram thresholds, greedy allocation), ``evaluate`` (perplexity,
generation agreement, results file). Importing this package imports nothing heavy; the submodules do.
"""
