"""Test-wide settings."""

from __future__ import annotations

import torch

# The models in the tests are tiny: intra-op threads only add overhead, and on a shared
# 2-core machine they make small kernels wait for busy cores.
torch.set_num_threads(1)
