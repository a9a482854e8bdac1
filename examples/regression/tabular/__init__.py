"""A user's regression project: a model with its own training and validation steps, on
scikit-learn's diabetes data, tuned by tunetorch without glue code."""
