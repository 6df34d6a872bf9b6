"""tongdai core: the support domain (models, Redis store, identity, tagging, routing, config)."""
