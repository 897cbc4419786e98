"""The stage-2 study (issue 33; ours, beyond the paper): can a learned ``<and>`` beat
plain concatenation at 135M when it gets enough data and capacity?

The position study (``steerlib.study.position``) fixed where tokens are read; in that
layout the shipped ``<and>`` (trained on 131 constructed targets for 24 steps) scores
below concatenation. This study gives stage 2 what the anchors had:

* **data**: pair targets from the model reading both instructions of a kept seen pair,
  kept when both verifiers pass, plus the recipe's constructed ones;
* **capacity**: an ``<and>`` of several vectors (a connector, as in Tailor);
* **objective**: lower distillation temperatures, a cross-entropy term, no L_orth.

It follows ``results/cpu/stage2/PLAN.md``, committed before any test generation: every
candidate is screened on the position study's selection set with its metric, and the
winner is tested once, against concatenation of the same tokens in the same layout.

One job per module, each importing only those listed before it:

* ``data``: the training targets and the kept seen pairs;
* ``candidates``: the eight candidates, their training config, their trained tokens;
* ``report``: the search table, the winner rule, the test table;
* ``stages``: ``python -m steerlib stage2 --stage ...``.
"""
