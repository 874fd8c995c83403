"""Absorbed dose (LED, voxel S-value kernels, density correction), DVH, BED and uncertainty."""
