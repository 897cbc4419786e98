"""The README's quick start (tests/test_readme.py keeps the two identical)."""
import steerlib as st

bb = st.load_backbone()                    # the embedded SmolLM2-135M-Instruct (no download)
tokens = st.SteeringTokens.pretrained(bb)  # the shipped behavior tokens and <and>
sm = st.SteeredModel(bb, tokens)
prompts = ["Why is the sky blue? <french>", "How do vaccines work? <spanish><and><sentences_1>"]
# demo decoding: greedy with a repetition penalty (a 135M model loops without one);
# every evaluation uses plain greedy decoding, as the paper does
for prompt, answer in zip(prompts, sm.generate(prompts, max_new_tokens=64, repetition_penalty=1.3)):
    print(prompt, "->", answer, "\n")

# stage 1 for <french> with the cpu preset's config: the shipped token was trained with
# exactly this config, so it is loaded, not trained (retrain=True trains it again)
preset = st.presets.cpu()
french = st.train_behavior_token(bb, "french", st.study.stage1_config(preset, "french"))
print("<french>:", french.info["french"]["steps"], "steps,", french.info["french"]["seconds"], "s to train")

# the paper's protocol on one pair: 2 methods x 2 orderings x 5 prompts = 20 generations
records = st.evaluate(sm, ["instruction", "and"], [("french", "sentences_1")],
                      st.prompts.load("test", limit=5), max_new_tokens=64)
print(st.metrics(records)[["method", "split", "mean_acc", "mean_lo", "mean_hi", "n"]].round(1))
