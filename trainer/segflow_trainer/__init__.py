"""segflow's trainer: a Temporal Python worker on `segflow-trainer` that applies GRPO/DAPO policy
updates (PPO-clip with clip-higher and dual clip, token-mean, optional KL, AdamW) to a Hugging Face
causal LM, full or LoRA, and stores every policy version and its trainer state in S3."""

__version__ = "0.1.0"
