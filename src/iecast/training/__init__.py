"""Training: config and presets, the seeded data stream, the losses, the training model (GAN steps), checkpoint formats and the Fabric loop."""
