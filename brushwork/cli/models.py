"""``brushwork models``: the model store's entries and whether each is available here."""

from __future__ import annotations

import argparse

from brushwork.cli.common import emit_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list pretrained networks, their sources, licences and availability")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from brushwork import store

    rows = []
    for name, e in sorted(store.REGISTRY.items()):
        rows.append(
            {
                "name": name,
                "status": store.status(name),
                "size_mb": round(e.size / 1e6, 1),
                "licence": e.licence,
                "source": e.url or e.package_file,
                "sha256": e.sha256 or e.sha256_prefix,
                "description": e.description,
                "origin": [{"url": u, "sha256": h, "size": n} for u, h, n in e.origin],
            }
        )
    if args.json:
        emit_json(rows)
        return 0
    meaning = {"cached": "ready", "source": "ready (converted on first use)", "missing": "not available offline"}
    width = max(len(r["name"]) for r in rows)
    print(f"cache: {store.home()}")
    for r in rows:
        print(f"{r['name']:<{width}}  {meaning[r['status']]:<31} {r['size_mb']:>7} MB  {r['licence']}")
        print(f"{'':<{width}}  {r['description']}; source: {r['source']}")
        for o in r["origin"]:
            print(f"{'':<{width}}  converted from {o['url']} (sha256 {o['sha256'][:16]}…, {o['size']} bytes)")
    return 0
