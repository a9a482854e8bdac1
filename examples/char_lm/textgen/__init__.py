"""A user's language-model project: a byte-level recurrent model with its own training step,
validation step and optimiser, on text that ships with Python, tuned by tunetorch."""
