"""daoban knowledge package.

Importing it (``channels`` and ``nlu`` import it first) sets numpy's BLAS and OpenMP to one
thread unless the environment already says otherwise: it must happen before numpy is
loaded. daoban's matrix work is one query at a time — a (examples × 512) · 512 product per
search — and OpenBLAS's default threads cost ~10× its arithmetic in thread hand-offs
(measured on 2 cores: 0.2 ms with one thread against 2–4 ms of CPU, 10–30 ms wall under
load, with the default). faiss and onnxruntime are set to one thread where they are built.
"""

import os as _os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")
