"""Convert the MicroAST authors' four weight files to the shipped ``brushwork/assets/models/microast.safetensors``.

    python tools/convert_microast.py FOLDER   # FOLDER holds the four *_iter_160000.pth.tar files

Each file is checked against its sha256 (the table in :data:`brushwork.methods.microast.ORIGINS`), its keys are
prefixed as in :class:`brushwork.nets.microast.MicroAST`, and the result is written (atomically) with a JSON
config beside it recording where every tensor came from. Deterministic: running it again gives the same files.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save

from brushwork.io import write_atomic
from brushwork.methods.microast import ASSETS, CONFIG, ORIGINS, SHIPPED
from brushwork.nets.microast import ORIGINAL_FILES, MicroAST


def convert(folder: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for part, prefix in ORIGINAL_FILES.items():
        url, sha256, size = ORIGINS[part]
        path = folder / url.rsplit("/", 1)[-1]
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256 or len(data) != size:
            raise SystemExit(f"{path} is not the published file (sha256 or size differ)")
        for key, value in torch.load(path, map_location="cpu", weights_only=True).items():
            state[prefix + key] = value.float().contiguous()
    MicroAST().load_state_dict(state)  # every key present, every shape right
    return state


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/weights/microast")
    state = convert(folder)
    data = save(dict(sorted(state.items())), metadata={"format": "brushwork-microast"})
    write_atomic(ASSETS / SHIPPED, data)
    config = {
        **CONFIG,
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "file_size": len(data),
        "parameters": sum(v.numel() for v in state.values()),
        "origin": {part: dict(zip(("url", "sha256", "size"), ORIGINS[part], strict=True)) for part in ORIGINS},
    }
    write_atomic((ASSETS / SHIPPED).with_suffix(".json"), (json.dumps(config, indent=2) + "\n").encode())
    print(f"wrote {ASSETS / SHIPPED} ({len(data)} bytes, sha256 {config['file_sha256']})")


if __name__ == "__main__":
    main()
