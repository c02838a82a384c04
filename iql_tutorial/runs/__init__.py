"""Training runs: offline training, online fine-tuning, sweeps, evaluation, checkpoints, CLIs."""
