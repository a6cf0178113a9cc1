"""The bundled trainer: CondenseNet from scratch with condensing, resume, evaluation and DDP.

``condense-deploy train`` calls ``loop.train``; ``condense-deploy eval`` calls ``evaluate.evaluate``;
``torchrun --nproc_per_node=N -m condense_deploy.train ...`` runs the train command on N processes.
Importing this package imports nothing heavy.
"""
