"""brushwork: neural style transfer, every family of it, in one toolkit.

The public API is imported lazily so that ``import brushwork`` (and the CLI's fast path)
does not pay for ``import torch`` until a method needs it.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# OpenMP threads that busy-wait make every torch op many times slower on a CPU shared with other work (measured
# 2.7-4.5x for optimize on 2 shared cores); sleeping waits cost little on an idle machine. It must be set before
# torch loads, so it is set here, for API users as for the CLI; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "BrushworkError": "brushwork.errors",
    "load_image": "brushwork.io",
    "save_image": "brushwork.io",
    "stylize": "brushwork.api",
    "stylize_picture": "brushwork.api",
    "renderer": "brushwork.api",
    "Renderer": "brushwork.api",
    "Progress": "brushwork.api",
    "METHODS": "brushwork.api",
    "style_vector": "brushwork.methods.fast",
    "optimize": "brushwork.methods.optimize",
    "OptimizeResult": "brushwork.methods.optimize",
    "build_backbone": "brushwork.nets.backbone",
    "mix": "brushwork.latent",
    "sample": "brushwork.latent",
    "interpolate": "brushwork.latent",
    "style_map": "brushwork.latent",
    "load_style_space": "brushwork.latent",
    "train_style_vae": "brushwork.train.style_vae",
    "stylize_autoencoder": "brushwork.methods.autoencoder",
    "train_decoder": "brushwork.train.decoder",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'brushwork' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
