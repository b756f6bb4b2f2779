"""POT (Python Optimal Transport), imported with only the backends the course uses.

POT loads every array library it finds. Its JAX backend puts a value on each device, and JAX
then reserves 75% of the GPU's memory for itself (XLA's preallocation) — on Colab, where
jax[cuda] is preinstalled, a PyTorch notebook that imports ``ot`` loses three quarters of the
GPU, and two such processes on one GPU run out of memory. The course passes NumPy arrays and
PyTorch tensors only, so :func:`import_pot` turns the JAX, CuPy and TensorFlow backends off
(POT's own switches, ``POT_BACKEND_DISABLE_*``) before the first import. To keep one, set its
switch to an empty string beforehand (POT treats any non-empty value as "off").
"""
from __future__ import annotations

import os
import sys
import types

__all__ = ["import_pot", "UNUSED_BACKENDS"]

#: POT's environment switches for the backends the course never uses
UNUSED_BACKENDS = ("POT_BACKEND_DISABLE_JAX", "POT_BACKEND_DISABLE_CUPY", "POT_BACKEND_DISABLE_TENSORFLOW")


def import_pot() -> types.ModuleType:
    """``import ot`` with the unused backends off (no effect if ``ot`` was imported before)."""
    if "ot" not in sys.modules:
        for key in UNUSED_BACKENDS:
            os.environ.setdefault(key, "1")
    import ot

    return ot
