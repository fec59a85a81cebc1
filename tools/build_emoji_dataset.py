#!/usr/bin/env python
"""Build the emoji training set (128x128 RGB on white, Unicode-subgroup labels).

    python tools/build_emoji_dataset.py --out data/emoji            # everything
    python tools/build_emoji_dataset.py --out data/emoji --folder data/emoji-train   # + the `randar train` folder
    python tools/build_emoji_dataset.py --out /tmp/e --limit 20     # quick small build

Sources (nothing is downloaded here; install them first, see checkpoints/DATA_CARD.md):
  apt-get install -y fonts-noto-color-emoji
  npm install -g openmoji@17.0.0 @discordapp/twemoji@16.0.1
  pip install resvg-py==0.5.0
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from randar.data.emoji_build import SETS, SourceMissing, build_emoji_dataset  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (e.g. data/emoji)")
    ap.add_argument("--limit", type=int, default=None,
                    help="build only N emoji (deterministic spread, >= 2 held out)")
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma list from {','.join(SETS)}")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--allow-missing", action="store_true",
                    help="skip sets whose sources are not installed instead of failing")
    ap.add_argument("--no-contact-sheet", action="store_true")
    ap.add_argument("--folder", default=None, metavar="DIR",
                    help="also write the training split as a `randar train` folder (one class per emoji, the "
                         "training artwork sets only, held-out emoji and styles left out)")
    a = ap.parse_args(argv)
    t0 = time.time()
    try:
        m = build_emoji_dataset(a.out, sets=[s for s in a.sets.split(",") if s], limit=a.limit,
                                workers=a.workers, allow_missing=a.allow_missing,
                                contact_sheet=not a.no_contact_sheet)
    except SourceMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.folder:
        from randar.data import load_emoji_dataset
        from randar.data.emoji_build import export_training_folder

        export_training_folder(load_emoji_dataset(a.out), a.folder)
    c = m["counts"]
    total = sum(f["bytes"] for f in m["files"].values())
    print(json.dumps({"per_set": {k: v["images"] for k, v in m["per_set"].items()}, **c}))
    print(f"wrote {a.out}: {c['images']} images, {c['classes']} classes, "
          f"{c['eval']} held out ({c['emoji_eval']} emoji), {total / 2**20:.2f} MiB, "
          f"{time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
