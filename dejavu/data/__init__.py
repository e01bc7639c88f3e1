"""Data: datasets into the image store (synthetic benchmark, ImageNet and own-image
folders), the A/B/held-out/public split and the background crops.
"""
