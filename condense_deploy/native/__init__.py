"""The Python side of our native kernels (csrc/, the ``ai.condense_deploy`` custom-op library):
where the library is (``library``), the contract the graph pass and the library share
(``contract``), and the numpy meaning of each op (``reference``). Imports neither torch nor onnx.
"""

