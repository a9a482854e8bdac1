"""What a config may name, kept free of torch so that bad input is refused in a fraction of a
second: `python -m tunetorch.tune` validates against these before it imports torch."""

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")

# The hyperparameters each model reads from a trial's params (falling back to its config).
MODEL_PARAMS = {
    "mlp": ("depth", "width", "dropout"),
    "cnn": ("depth", "channels", "dropout"),
}

# The hyperparameters the trainer reads from a trial's params (falling back to its config).
TRAINER_PARAMS = ("lr", "weight_decay", "batch_size")
