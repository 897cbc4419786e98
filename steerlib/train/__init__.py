"""Training: teacher targets (stage 1's data), the distillation loss and loop, stage 1
(one behavior token) and stage 2 (the composition token ``<and>``)."""
