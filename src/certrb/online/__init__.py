"""The online stage: what a reduced model evaluates with, small arrays only.

Nothing here imports :mod:`certrb.offline`, scipy.sparse or an n_h-sized array (a test
follows the imports). A saved model evaluates with these modules and numpy (h5py to read it).
"""
