#!/usr/bin/env python
"""RandAR Studio's web app.

    python app.py                                  # the default model (randar-emoji), http://127.0.0.1:7860
    python app.py --model randar-l --port 8080     # an official checkpoint (python -m randar download randar-l)
    RANDAR_MODEL=path/to/model_dir python app.py   # any model directory

The code lives in the `randar_app/` package (`randar_app/ui.py` layout, `randar_app/tabs/` one module per tab, `randar_app/live.py` live view,
`randar_app/state.py` model cache); `python app.py --help` lists the options.
"""
from __future__ import annotations

import sys

from randar_app import main

if __name__ == "__main__":
    sys.exit(main())
