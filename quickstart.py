"""The README's quick start (tests/test_readme.py keeps the two identical)."""

import steerlib as st

bb = st.load_backbone()  # the embedded SmolLM2-135M-Instruct (no download)
sm = st.SteeredModel(
    bb, st.SteeringTokens.pretrained(bb)
)  # the shipped behavior tokens and <and>
print(
    sm.generate(
        "How do vaccines work? <spanish><and><sentences_1>",
        max_new_tokens=64,
        repetition_penalty=1.3,
    )
)  # demo decoding; evaluations are plain greedy
# the paper's protocol on one pair: 2 methods x 2 orderings x 5 prompts
records = st.evaluate(
    sm,
    ["instruction", "and"],
    [("french", "sentences_1")],
    st.prompts.load("test", limit=5),
    max_new_tokens=64,
)
print(
    st.metrics(records)[
        ["method", "split", "mean_acc", "mean_lo", "mean_hi", "n"]
    ].round(1)
)
