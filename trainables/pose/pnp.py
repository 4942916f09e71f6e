"""Pose from 2D-3D keypoint matches with OpenCV's PnP (RANSAC, then refinement on inliers)."""
from __future__ import annotations

import numpy as np


def solve_pnp(object_points: np.ndarray, image_points: np.ndarray, K: np.ndarray, *,
              ransac: bool = True, threshold: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (3, 3) and translation (3,) that project ``object_points`` onto ``image_points``.

    Falls back to a plain iterative solve when RANSAC finds no consensus; a failed solve gives
    the identity rotation 1 m in front of the camera (an error, scored as such by ADD).
    """
    import cv2

    obj = np.ascontiguousarray(object_points, dtype=np.float64)
    img = np.ascontiguousarray(image_points, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    ok, rvec, tvec, inliers = False, None, None, None
    if ransac:
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(obj, img, K, None, flags=cv2.SOLVEPNP_EPNP,
                                                     reprojectionError=threshold, iterationsCount=60)
        if ok and inliers is not None and len(inliers) >= 4:
            idx = inliers[:, 0]
            ok, rvec, tvec = cv2.solvePnP(obj[idx], img[idx], K, None, rvec, tvec,
                                          useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
        else:
            ok = False
    if not ok:
        ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_EPNP)
        if ok:
            ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, rvec, tvec, useExtrinsicGuess=True,
                                          flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or not np.isfinite(tvec).all():
        return np.eye(3), np.array([0.0, 0.0, 1.0])
    return cv2.Rodrigues(rvec)[0], tvec.reshape(3)
