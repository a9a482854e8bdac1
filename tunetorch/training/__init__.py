"""Training: the objective run in workers, the trainer loop, built-in models and data modules."""
