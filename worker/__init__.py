"""RQ jobs and worker entry points: thin, calling ``core``.

Importing this package loads the workspace (``tongdai.core.workspace``), which registers its
reactors, periodic tasks and ingest interceptors on the pipeline: RQ imports
``tongdai.worker.jobs`` by name, so this is where a worker process gets them.
"""

import tongdai.core.workspace  # noqa: F401  (registers on the pipeline's hooks)
