"""The README's quick start (tests/test_readme.py keeps the two identical)."""

import steerlib as st

bb = st.load_backbone()  # the embedded SmolLM2-135M-Instruct (no download)
tokens = st.SteeringTokens.pretrained(bb)  # the default pack: tokens, <and>, layout
sm = st.SteeredModel(bb, tokens)
prompt = "How do vaccines work? <spanish><and><sentences_1>"
print(sm.generate(prompt, max_new_tokens=64))  # greedy, as every evaluation
# the paper's protocol on one pair: 2 methods x 2 orderings x 5 prompts
questions = st.prompts.load("test", limit=5)
pair = [("french", "sentences_1")]
records = st.evaluate(sm, ["instruction", "and"], pair, questions, max_new_tokens=64)
columns = ["method", "split", "mean_acc", "mean_lo", "mean_hi", "n"]
print(st.metrics(records)[columns].round(1))
