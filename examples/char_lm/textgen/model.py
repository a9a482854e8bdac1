"""A small byte-level transformer language model with its own steps and its own optimiser
(Lightning's names; no Lightning needed). tunetorch calls `configure_optimizers()` once per trial
because the config names no optimiser (conf/model/char_lm.yaml sets `optimizer: null`),
`training_step` for each training batch (backpropagating the loss it returns) and
`validation_step` for each validation batch, averaging what it returns over the split weighted by
batch size. Both metrics are means over tokens, so that average is exact: val_loss is the
cross-entropy in nats per byte, val_bits_per_byte the same in bits."""

import math

import torch
import torch.nn.functional as F
from torch import nn


class CharLM(nn.Module):
    def __init__(
        self, input_shape, n_classes, width=64, layers=2, heads=4, dropout=0.0, lr=3e-3, weight_decay=0.0
    ):
        super().__init__()
        self.lr, self.weight_decay = lr, weight_decay
        context = input_shape[0]
        self.embed = nn.Embedding(n_classes, width)
        self.position = nn.Parameter(torch.zeros(context, width))
        block = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_classes)
        causal = nn.Transformer.generate_square_subsequent_mask(context)
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        h = self.embed(tokens) + self.position[:t]
        h = self.blocks(h, mask=self.causal[:t, :t], is_causal=True)
        return self.head(self.norm(h))  # (batch, context, n_classes)

    def _loss(self, batch) -> torch.Tensor:
        inputs, targets = batch
        return F.cross_entropy(self(inputs).flatten(0, 1), targets.flatten())

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        return {"val_loss": loss, "val_bits_per_byte": loss / math.log(2)}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
