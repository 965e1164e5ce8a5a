"""Pure network architectures (``nn.Module`` only, no I/O). Weights are loaded by ``brushwork.store``."""
