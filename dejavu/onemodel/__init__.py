"""Tests that need no reference model: the correlation classifiers, the one-model
test and SSLMem.
"""
