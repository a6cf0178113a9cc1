"""The model zoo: layers, the architectures (CondenseNet, DenseNet, baselines), their configs and
the registry that reads the cards. Importing this package is torch-free: the registry imports an
architecture module only when a model is built."""
