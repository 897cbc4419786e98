"""The named presets (smoke, cpu, colab, paper) and the reasons for their numbers.

* ``smoke``: seconds; unit tests and ``pytest --nbmake`` in CI.
* ``cpu``: the default outside CI; the embedded SmolLM2-135M model on a laptop CPU.
* ``colab``: one free Colab T4 GPU (float16), SmolLM2-1.7B-Instruct.
* ``paper``: the paper's model and hyper-parameters, for several GPUs under torchrun.

``presets.get()`` reads the ``STEERLIB_PRESET`` environment variable, so a
notebook runs in the smoke preset under CI and in the cpu preset elsewhere. Each
preset's docstring is its record: the measurements and estimates behind its budget.
"""

from __future__ import annotations

import os
from dataclasses import replace

from steerlib.config import EvalConfig, TargetConfig, TrainConfig, ValidationConfig
from steerlib.errors import ConfigError
from steerlib.preset import PRESET_NAMES, Preset

SHIPPED_PRESETS = ("cpu", "colab", "paper")
"""Presets whose results, made with their own model, live in the checkout's
``results/<name>/`` (``study.folders.results_dir``); every other run writes under the
git-ignored artifacts folder."""


def _constructed_stage2(stage1: TrainConfig, steps: int) -> TrainConfig:
    """Stage 2 as the colab and cpu presets train it: stage 1's settings for ``steps``
    steps, from a zero ``<and>``, on constructed pair targets (the cpu preset's
    docstring says why)."""
    return replace(
        stage1,
        steps=steps,
        init="zero",
        targets=replace(stage1.targets, source="constructed"),
    )


class presets:  # noqa: N801 - used as a namespace: st.presets.cpu()
    """The named presets."""

    NAMES = PRESET_NAMES

    @staticmethod
    def paper() -> Preset:
        """The paper's model and hyper-parameters, on several GPUs (not run in this
        project).

        Qwen3-8B (the paper's main table) steered, targets written under the
        instruction by Qwen3-30B-A3B (the paper's), AdamW at 1e-4 for 2 epochs over 50k
        examples per behavior, evaluation on 1,000 prompts per ordering: every default
        of the configs.

        Launch with ``torchrun --nproc_per_node N -m steerlib reproduce --preset
        paper``: each rank takes its shard of every global batch of 16 and of every
        generation job (``steerlib.distributed``). Memory per rank, estimated in bf16
        (not measured): the two models' weights, 8.2B x 2 B = 16 GB and 30.5B x 2 B =
        61 GB, so 80 GB GPUs; with ``TargetConfig(source="self")`` (our default
        elsewhere) the 30B model is never loaded. A step's activations (16/N examples
        of about 300 tokens, 36 layers of width 4,096 and MLP 12,288: about 5.9 MB a
        token kept for the backward pass, plus fp32 logits over 152k words at each
        answer token) come to about 2.4 GB an example, 16/N of them per rank.
        """
        targets = TargetConfig(source="model", model="Qwen/Qwen3-30B-A3B")
        return Preset(
            "paper",
            TrainConfig(targets=targets),
            TrainConfig(init="zero", targets=targets),
            EvalConfig(),
            model="Qwen/Qwen3-8B",
        )

    @staticmethod
    def colab() -> Preset:
        """One free Colab GPU: a T4 with 16 GB (about 15 usable) and no native bfloat16.

        An estimate, not a measurement: this project has run no GPU. The model is
        SmolLM2-1.7B-Instruct, the embedded model's 12x larger sibling (same tokenizer
        and chat template, 24 layers of width 2,048, MLP 8,192, 49,152 words, 1.71B
        parameters). ``load_backbone`` gives it float16 weights on a T4; the steering
        vectors, AdamW and the distillation KL stay in float32 (``distill_loss``
        upcasts the logits).

        Memory, float16 (2 bytes):

        * weights: 1.71B x 2 B = 3.4 GB;
        * training, per example of about 300 tokens (a 50-token prompt, a 256-token
          answer): the student's activations kept for the backward pass, about (8 x
          2,048 + 4 x 8,192) values x 2 B = 98 KB a token and layer, x 24 layers x 300
          tokens = 0.71 GB; the fp32 logits at 256 answer positions, 49,152 x 4 B x 4
          live copies = 0.2 GB. So about 0.9 GB an example: batch 8 needs about 7.4 GB,
          12 GB with the weights and CUDA's own use; batch 16 (the paper's global batch
          in our configs) would need about 19 GB;
        * generation: the KV cache holds 2 x 24 layers x 2,048 x 2 B = 0.2 MB a token,
          so a batch of 64 answers of up to 300 tokens holds 3.8 GB: 7.2 GB with the
          weights.

        Time, at an assumed 16 TFLOP/s (a quarter of the T4's fp16 peak): a step costs
        the teacher's forward pass, the student's and its backward pass to the input,
        about 6 x 1.71B x 8 x 300 = 2.5e13 FLOP, so about 1.5 s; 96 steps take under 3
        minutes a token. Steps and learning rate are a budget (ours): 96 steps of 8
        over 384 targets (2 epochs), at lr 1e-2, between the cpu preset's 5e-2 for at
        most 32 steps and the paper's 1e-4 for 6,250. Untuned: check the learning
        curves before trusting them.
        """
        targets = TargetConfig(max_new_tokens=256)
        stage1 = TrainConfig(
            steps=96, batch_size=8, lr=1e-2, checkpoint_every=16, targets=targets
        )
        stage2 = _constructed_stage2(stage1, steps=128)
        ev = EvalConfig(
            max_new_tokens=256,
            n_single=100,
            n_prompts=20,
            n_prompts_3=5,
            n_combos=12,
            n_combos_3=6,
            n_combos_4=2,
            batch_size=64,
        )
        return Preset(
            "colab", stage1, stage2, ev, model="HuggingFaceTB/SmolLM2-1.7B-Instruct"
        )

    @staticmethod
    def cpu() -> Preset:
        """The embedded model on a 2-core CPU (ours; every number here is a compute
        budget).

        Learning rate. Exploratory trials on <french> (scripts around
        train_behavior_token, not kept in the repo; 16 test prompts, one run each): lr
        1e-2 for 24 steps gave 0% French; with 16 steps on the first 48 answer tokens,
        lr 5e-2 gave 56% and lr 1e-1 0% (it overshoots). So: lr 5e-2, batches of 8, the
        first 48 answer tokens (they carry most of the signal and halve a step's cost).

        Steps: validation-guided, one budget for every behavior. ``python -m steerlib
        curves
        --preset cpu --behaviors french sentences_1 words_10_50 --max-steps 64``
        trained three behaviors of different kinds for 64 steps, scored on the 24
        validation questions every 8 steps (results/cpu/validation_curves.csv/.png).
        Their pass rates peaked at step 32 (<french>, 96%), 16 (<sentences_1>, 88%) and
        24 (<words_10_50>, 88%) and did not rise after (<french> 83-92%, <sentences_1>
        79-88%, <words_10_50> 58-75%). So stage 1 trains at most 32 steps over 128
        targets and keeps the best-scoring step (``ValidationConfig``; the test split
        is never read). Stage 2 trains at most 64 steps over 256 pair targets (every
        seen cross-category pair; 4x the 96 of the fixed-step run), scored on
        validation pairs, and keeps its best step the same way.

        Targets. ``python -m steerlib targets-compare --preset cpu`` trained every
        behavior on every target policy at the earlier fixed budget of 16 steps
        (results/cpu/targets_comparison.md, 30 held-out prompts per cell);
        ``target_policies`` holds each behavior's best policy there
        (``study.singles.best_policies``; a test keeps the two in step). No policy wins
        everywhere: the CE term lifts Spanish, Italian and German from 40/3/0% to
        73/50/57% and 90-120 words to 90%; filtered targets lift <french> from 10% to
        77%; constructed ones help 10-50 words and 2-3 sentences. Stage 2 trains <and>
        on constructed pair targets (both transforms where both exist; a language asked
        for by instruction and kept where the answer is in it), without the CE term
        (the paper's loss).

        Baselines. LM-Steer and LoRA learn each behavior with its token's config, but a
        token's lr makes LoRA diverge (one exploratory <french> run at 5e-2: KL 0.48 ->
        7.1 after 2 steps, 10-30 after): a rank-8 update of every MLP moves the whole
        model, a token one input vector. On <spanish> (16 steps, script not kept) lr
        1e-3 took the training KL from 2.08 to about 1.0 and 5e-3 to about 0.8, both
        smoothly, so LoRA trains at 5e-3. LM-Steer keeps 5e-2 (its eps 1e-3 scales the
        map down). The evaluation samples combinations and prompts; intervals say what
        that costs.

        Ablations. Each ``<and>`` setting on the 16 capable pairs is tested on the
        first 16 of the study's 30 prompts per ordering: 416 seen and 96 unseen pair
        generations (a 95% interval of about +-4 and +-9 points at a 25% pass rate, so
        seen intervals part at about 9 points, unseen ones at about 17), about 6
        minutes of one core per setting.
        """
        targets = TargetConfig(max_new_tokens=96, plain_max_new_tokens=160)
        # Validation: 24 questions (4.2 points a pass), scored every 8 steps at the
        # evaluation's 128-token cap, so the long word ranges are visible too.
        validation = ValidationConfig(
            every=8, patience=3, n_questions=24, max_new_tokens=128, batch_size=24
        )
        stage1 = TrainConfig(
            steps=32,
            batch_size=8,
            lr=5e-2,
            max_answer_tokens=48,
            checkpoint_every=4,
            targets=targets,
            validation=validation,
        )
        stage2 = _constructed_stage2(stage1, steps=64)
        ev = EvalConfig(
            max_new_tokens=128,
            n_single=30,
            n_prompts=5,
            n_prompts_3=2,
            n_combos=6,
            n_combos_3=3,
            n_combos_4=1,
            batch_size=64,
            n_capable=30,
            n_ablation=16,
        )
        target_policies = {
            "french": "filtered",
            "spanish": "constructed+ce",
            "italian": "constructed+ce",
            "portuguese": "self",
            "german": "constructed+ce",
            "words_10_50": "constructed",
            "words_50_70": "filtered",
            "words_70_90": "self",
            "words_90_120": "constructed+ce",
            "lower_case": "constructed+ce",
            "upper_case": "self",
            "title_case": "constructed",
            "sentences_1": "self",
            "sentences_2": "constructed",
            "sentences_3": "constructed",
            "sentences_4": "constructed+ce",
            "sentences_5": "constructed+ce",
            "json": "self",
        }
        return Preset(
            "cpu",
            stage1,
            stage2,
            ev,
            target_policies=target_policies,
            validation=validation,
            baseline_lr={"lora_dare": 5e-3},
        )

    @staticmethod
    def smoke() -> Preset:
        """Seconds: a tiny random LLaMA on the embedded tokenizer (tests, CI
        notebooks)."""
        targets = TargetConfig(max_new_tokens=12, plain_max_new_tokens=24, min_kept=1)
        stage1 = TrainConfig(
            steps=3, batch_size=2, lr=5e-2, checkpoint_every=2, targets=targets
        )
        stage2 = replace(stage1, init="zero")
        ev = EvalConfig(
            max_new_tokens=12,
            n_single=2,
            n_prompts=2,
            n_prompts_3=1,
            n_combos=2,
            n_combos_3=1,
            n_combos_4=1,
            batch_size=8,
            n_capable=2,
        )
        validation = ValidationConfig(
            every=2, patience=1, n_questions=4, max_new_tokens=8, batch_size=4
        )
        return Preset("smoke", stage1, stage2, ev, model="tiny", validation=validation)

    @staticmethod
    def get(name: str | None = None) -> Preset:
        """A preset by name, defaulting to ``$STEERLIB_PRESET`` or 'cpu'.

        >>> preset = presets.get("cpu")
        >>> preset.name, str(preset.stage1_config("french").targets.source)
        ('cpu', 'filtered')
        >>> presets.get("gpu")
        Traceback (most recent call last):
        ...
        steerlib.errors.ConfigError: unknown preset 'gpu'; choose one of [...]
        """
        name = name or os.environ.get("STEERLIB_PRESET", "cpu")
        if name not in presets.NAMES:
            raise ConfigError(
                f"unknown preset {name!r}; choose one of {sorted(presets.NAMES)}"
            )
        return getattr(presets, name)()


__all__ = ["SHIPPED_PRESETS", "presets"]
