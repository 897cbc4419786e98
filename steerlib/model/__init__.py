"""The steered model: the frozen backbone, the steering tokens, the chat template with
token slots, and generation for every steering method."""
