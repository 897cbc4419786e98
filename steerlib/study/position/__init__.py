"""The position study (issue 24; ours, beyond the paper): does a behavior token work
wherever it stands?

Stage 1 trains each behavior token right after the question. In a composition
``<b1><and><b2>`` the second token stands two slots later, and on the 135M model it
mostly stops working there. The study

1. **measures it from records** (no generation, ``steerlib.study.slots``): each
   behavior's own verdict split by the place its token (or instruction) stands in the
   ordering (``slots.slot_rates``), and the paper's order variance beside ours
   (``slots.order_variance``);
2. **selects on validation only** (``results/cpu/position/PLAN.md``, committed before
   any test generation): the pairs whose *instructions* pass both behaviors on
   validation questions, and the candidate of the search with the best joint pass rate
   on train questions that no target ever used;
3. **tests the winner once** on the test prompts against today's methods.

Place 1 is the slot right after the question; for instructions, place 1 is the first
instruction of the two, the same ordering the tokens of that record follow.

One job per module, each importing only those listed before it:

* ``candidates``: the candidate-name language and the families A, B, C it names;
* ``selection``: the selection questions, the instruction filter, the kept pairs and
  the plan's winner rule;
* ``runs``: screening on the selection set, the training runs of families B and C, and
  ``costs.json``;
* ``testrun``: the test run of the winner's pack;
* ``report``: the filter, search and test tables;
* ``stages``: ``python -m steerlib position --stage ...``.
"""
