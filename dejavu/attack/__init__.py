"""The two-model attack: embeddings, the public index and k-NN, the déjà vu score
and the linear probe.
"""
