"""RQ jobs and worker entry points: thin, calling ``core``."""
