"""The model service: a BentoML service loading a registered model, configured from the environment.

``mlfactor.serving.service`` is the BentoML entry module (importing it reads
settings and configures logging); the other modules are plain libraries.
"""
