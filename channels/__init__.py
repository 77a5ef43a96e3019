"""daoban channels package."""

import knowledge  # noqa: F401  (one BLAS/OpenMP thread, set before numpy loads)
