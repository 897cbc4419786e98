"""What the model is asked to do: the behaviors, the verifiers that check them, and the
questions they are asked on."""
