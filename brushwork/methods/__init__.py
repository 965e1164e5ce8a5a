"""One engine per family of style transfer: fast, optimize, autoencoder, latent."""
