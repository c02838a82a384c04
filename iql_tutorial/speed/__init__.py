"""The one IQL step run three ways (eager, ``torch.compile``, CUDA graph), and the benchmark."""
