"""Training: SSL methods and their losses, augmentation, optimizers, the training
loop (data-parallel inside a job) and models trained elsewhere.
"""
