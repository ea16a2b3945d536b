#!/usr/bin/env python3
"""The SSIM reference for tests/test_scores.c: scikit-image's
structural_similarity (Debian's python3-skimage) on the test's two images,
built the same way in float32. Prints the value the test compares with
1 - ssim_score (it is committed in the test; rerun this if the images change).
"""
import numpy as np
from skimage.metrics import structural_similarity

H, W = 12, 10
a = np.zeros((H, W), np.float32)
b = np.zeros((H, W), np.float32)
for y in range(H):
    for x in range(W):
        v = np.float32(x + y) / np.float32(H + W)
        a[y, x] = v
        n = v + np.float32(0.05) * (np.float32((x * 7 + y * 13) % 11) / np.float32(10.0) - np.float32(0.5))
        if 3 <= y < 6 and 4 <= x < 8:
            n = np.float32(0.95)
        b[y, x] = min(max(n, np.float32(0)), np.float32(1))
print("%.9f" % structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=1.0))
