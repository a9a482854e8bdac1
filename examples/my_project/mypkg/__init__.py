"""A user's own package: a model and a data module that tunetorch tunes without glue code."""
