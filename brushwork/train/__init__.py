"""Training loops: the AdaIN/WCT decoder, the style VAE, checkpoints and distributed helpers."""
