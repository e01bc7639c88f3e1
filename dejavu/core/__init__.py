"""The core every layer may use: the image store and its transforms, model
architectures and checkpoints, epoch arithmetic, logging.
"""
