"""Headless PyTorch training of the two-head de-LTM model (issue 4).

``python -m training train|runs|evaluate|ship`` — see :mod:`training.__main__`.
"""
